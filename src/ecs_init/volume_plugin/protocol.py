"""Docker's volume plugin protocol: each ``/Plugin.Activate`` and ``/VolumeDriver.*`` request -> a Registry call.

``dispatch`` is the one entry point: a path and a JSON body in, an HTTP
status and a JSON answer out. Request errors are ``{"Err": "..."}`` with
HTTP 200 (what Docker's plugin client expects); malformed requests get 400.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping

from ecs_init.volume_plugin.drivers import VolumeError
from ecs_init.volume_plugin.registry import Registry
from ecs_init.volume_plugin.state import Volume

log = logging.getLogger(__name__)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- protocol


def _field(body: Mapping[str, Any], key: str) -> Any:
    return body.get(key)


def _volume_json(vol: Volume) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": vol.name, "Mountpoint": vol.path, "Status": {}}
    if vol.created_at:
        out["CreatedAt"] = vol.created_at
    return out


def _activate(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Implements": ["VolumeDriver"]}


def _create(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    reg.create(_field(body, "Name"), _field(body, "Opts"))
    return {"Err": ""}


def _remove(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    reg.remove(_field(body, "Name"))
    return {"Err": ""}


def _mount(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Mountpoint": reg.mount(_field(body, "Name"), _field(body, "ID")), "Err": ""}


def _unmount(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    reg.unmount(_field(body, "Name"), _field(body, "ID"))
    return {"Err": ""}


def _path(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Mountpoint": reg.path(_field(body, "Name")), "Err": ""}


def _get(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Volume": _volume_json(reg.get(_field(body, "Name"))), "Err": ""}


def _list(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Volumes": [{"Name": v.name, "Mountpoint": v.path} for v in reg.volumes()], "Err": ""}


def _capabilities(reg: Registry, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"Capabilities": {"Scope": "local"}}


ROUTES: dict[str, Callable[[Registry, Mapping[str, Any]], dict[str, Any]]] = {
    "/Plugin.Activate": _activate,
    "/VolumeDriver.Create": _create,
    "/VolumeDriver.Remove": _remove,
    "/VolumeDriver.Mount": _mount,
    "/VolumeDriver.Unmount": _unmount,
    "/VolumeDriver.Path": _path,
    "/VolumeDriver.Get": _get,
    "/VolumeDriver.List": _list,
    "/VolumeDriver.Capabilities": _capabilities,
}


def dispatch(reg: Registry, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Answer one request: (HTTP status, JSON body). Never raises."""
    route = ROUTES.get(path.split("?", 1)[0])
    if route is None:
        return 404, {"Err": f"unknown endpoint {path[:200]!r}"}
    try:
        text = raw.decode("utf-8").strip()
        body = json.loads(text) if text else None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return 400, {"Err": f"malformed JSON request: {err or 'nested too deeply'}"}
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return 400, {"Err": "request body must be a JSON object"}
    try:
        return 200, route(reg, body)
    except VolumeError as err:
        log.info("%s: %s", path, err)
        return 200, {"Err": str(err)}
    except Exception as err:  # noqa: BLE001 - a bug must not take the plugin down
        log.exception("%s failed", path)
        return 500, {"Err": f"internal error: {type(err).__name__}: {err}"}
