"""The Engine API client: every call this program makes to Docker (implements ``api.Engine``).

Standard library only (``json`` over ``transport``). Each call maps to one
Engine API request, carries a timeout (``wait`` has none: it lasts as long
as the agent does, and pings the daemon over a fresh connection after every
``wait_probe_interval`` of silence, so a hung daemon is noticed), and
raises only ``ecs_init.docker.errors`` exceptions. Request bodies are
exactly what the caller gives: nothing is added (no proxy variables from
``~/.docker/config.json``, unlike the Docker SDK for Python).
"""

from __future__ import annotations

import json
import logging
import time

from ecs_init.docker import answers, transport
from ecs_init.docker.api import STOP_GRACE, LogLine, Readable
from ecs_init.docker.daemon import PING_TIMEOUT, negotiate_api_version, server_version, wait_for_daemon
from ecs_init.docker.errors import Conflict, EngineError, EngineUnavailable, NotFound

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 60.0  # seconds, any call but wait, load and stop
LOAD_TIMEOUT = 1800.0  # the whole image load
PROBE_TIMEOUT = 5.0  # one ping asking "is the daemon still there?"
WAIT_PROBE_INTERVAL = 30.0  # silence on a wait after which the daemon is pinged
STOP_MARGIN = 20.0  # a stop may take the grace period plus this (SIGKILL, clean-up)
MAX_LOG_BYTES = 8 * 1024 * 1024
_DEFAULT = -1.0  # "the client's own timeout"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encode ``text`` for a URL path segment or query value."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if char in _SAFE or char in safe else f"%{byte:02X}")
    return "".join(out)


class EngineClient:
    """A Docker Engine at ``host`` speaking the negotiated API version."""

    def __init__(
        self,
        host: str,
        version: Mapping[str, Any],
        timeout: float = REQUEST_TIMEOUT,
        wait_probe_interval: float = WAIT_PROBE_INTERVAL,
        probe_timeout: float = PROBE_TIMEOUT,
        quick: bool = False,
    ) -> None:
        self._host = host
        self._server = dict(version)
        self._api = negotiate_api_version(str(version.get("ApiVersion", "")), str(version.get("MinAPIVersion", "")))
        self.timeout = timeout
        self.wait_probe_interval = wait_probe_interval
        self.probe_timeout = probe_timeout
        # quick (the operator commands): once the daemon failed to answer, every
        # later call fails at once instead of waiting out its own timeout again
        self.quick = quick
        self._gone: Optional[EngineUnavailable] = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def api_version(self) -> str:
        return self._api

    @property
    def server_version(self) -> Mapping[str, Any]:
        return self._server

    # ------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, str]] = None,
        *,
        body: Any = None,
        stream: Optional[Readable] = None,
        timeout: Optional[float] = _DEFAULT,
        idle: Optional[transport.Idle] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> transport.Response:
        target = f"/v{self._api}{path}"
        if query:
            target += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
        payload = None
        all_headers = dict(headers or {})
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        if self._gone is not None:
            raise EngineUnavailable(str(self._gone))
        try:
            return transport.request(
                self._host,
                method,
                target,
                timeout=self.timeout if timeout == _DEFAULT else timeout,
                headers=all_headers,
                body=payload,
                stream=stream,
                idle=idle,
            )
        except EngineUnavailable as err:
            if self.quick:
                self._gone = err
            raise

    def _get(self, path: str, query: Optional[Mapping[str, str]] = None) -> Any:
        resp = self._request("GET", path, query)
        if resp.status != 200:
            raise answers.error_of(resp)
        return answers.json_of(resp, f"GET {path}")

    @staticmethod
    def _expect(resp: transport.Response, *ok: int) -> int:
        if resp.status not in ok:
            raise answers.error_of(resp)
        resp.close()
        return resp.status

    # ------------------------------------------------------------ the daemon

    def probe(self, timeout: Optional[float] = None) -> bool:
        timeout = self.probe_timeout if timeout is None else timeout
        try:
            resp = transport.request(self._host, "GET", "/_ping", timeout=timeout)
            ok = resp.status == 200
            resp.read_all(1024)
            resp.close()
            return ok
        except EngineError:
            return False

    def reconnect(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        info = wait_for_daemon(self._host, timeout, sleep=sleep)
        self._api = negotiate_api_version(str(info.get("ApiVersion", "")), str(info.get("MinAPIVersion", "")))
        self._server = info

    def info(self) -> dict[str, Any]:
        doc = self._get("/info")
        return doc if isinstance(doc, dict) else {}

    def networks(self) -> list[dict[str, Any]]:
        doc = self._get("/networks")
        return [n for n in doc if isinstance(n, dict)] if isinstance(doc, list) else []

    def close(self) -> None:
        """Nothing to release: every request has its own connection."""

    # ------------------------------------------------------------ images

    def image_id(self, ref: str) -> Optional[str]:
        try:
            doc = self._get(f"/images/{quote(ref, '/:@')}/json")
        except NotFound:
            return None
        return str(doc["Id"]) if isinstance(doc, dict) and doc.get("Id") else None

    def tag_image(self, image_id: str, repository: str, tag: str) -> None:
        resp = self._request("POST", f"/images/{quote(image_id, ':')}/tag", {"repo": repository, "tag": tag})
        self._expect(resp, 200, 201)

    def load_image(self, stream: Readable) -> list[str]:
        try:
            resp = self._request(
                "POST",
                "/images/load",
                {"quiet": "1"},
                stream=stream,
                timeout=LOAD_TIMEOUT,
                headers={"Content-Type": "application/x-tar"},
            )
            if resp.status != 200:
                raise EngineError(f"Docker refused the image archive: {answers.error_of(resp).message}", resp.status)
            try:
                return answers.load_messages(resp)
            finally:
                resp.close()
        except EngineUnavailable as err:
            raise EngineUnavailable(f"lost the Docker daemon while loading the image: {err}")

    # ------------------------------------------------------------ containers

    def container_state(self, name: str) -> Optional[dict[str, Any]]:
        try:
            doc = self._get(f"/containers/{quote(name)}/json")
        except NotFound:
            return None
        return doc if isinstance(doc, dict) else None

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        resp = self._request("POST", "/containers/create", {"name": name}, body=dict(body))
        if resp.status != 201:
            raise answers.error_of(resp)
        doc = answers.json_of(resp, "POST /containers/create")
        if not isinstance(doc, dict) or not doc.get("Id"):
            raise EngineError("Docker created the container but named no ID", resp.status)
        return str(doc["Id"])

    def start_container(self, name: str) -> None:
        self._expect(self._request("POST", f"/containers/{quote(name)}/start"), 204, 304)

    def wait_container(self, name: str, on_idle: Optional[Callable[[], None]] = None) -> int:
        def idle() -> None:
            self._alive()
            if on_idle is not None:
                on_idle()

        resp = self._request(
            "POST", f"/containers/{quote(name)}/wait", timeout=None, idle=(self.wait_probe_interval, idle)
        )
        if resp.status != 200:
            raise answers.error_of(resp)
        doc = answers.json_of(resp, "the wait")
        code = doc.get("StatusCode") if isinstance(doc, dict) else None
        if not isinstance(code, int):
            raise EngineError("Docker ended the wait without an exit code", resp.status)
        return code

    def _alive(self) -> None:
        """During a long wait: raise EngineUnavailable when the daemon stopped answering."""
        if not self.probe():
            raise EngineUnavailable(
                f"Docker at {self._host} does not answer: no answer to a ping within {self.probe_timeout:g}s"
            )

    def stop_container(self, name: str, grace: int = STOP_GRACE, timeout: Optional[float] = None) -> bool:
        limit = timeout if timeout is not None else grace + STOP_MARGIN
        try:
            resp = self._request("POST", f"/containers/{quote(name)}/stop", {"t": str(int(grace))}, timeout=limit)
            return self._expect(resp, 204, 304) == 204
        except NotFound:
            return False

    def remove_container(self, name: str) -> bool:
        try:
            self._expect(self._request("DELETE", f"/containers/{quote(name)}", {"force": "1"}), 204, 200)
        except NotFound:
            return False
        except Conflict as err:
            if "already in progress" not in err.message:
                raise
        return True

    def logs_tail(self, name: str, lines: int = 200) -> list[LogLine]:
        query = {"stdout": "1", "stderr": "1", "timestamps": "1", "tail": str(lines)}
        resp = self._request("GET", f"/containers/{quote(name)}/logs", query)
        if resp.status == 404:
            resp.close()
            return []
        if resp.status != 200:
            raise answers.error_of(resp)
        parts: list[bytes] = []
        size = 0
        try:
            while size < MAX_LOG_BYTES:
                data = resp.read()
                if not data:
                    break
                parts.append(data)
                size += len(data)
        finally:
            resp.close()
        return answers.demux(b"".join(parts))


def connect(
    host: str,
    wait: float,
    *,
    attempt_timeout: float = PING_TIMEOUT,
    timeout: float = REQUEST_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> EngineClient:
    """Wait up to ``wait`` seconds for the daemon, then a client speaking the negotiated version."""
    info = wait_for_daemon(host, wait, sleep=sleep, attempt_timeout=attempt_timeout)
    client = EngineClient(host, info, timeout=timeout)
    log.debug("connected to Docker at %s, API %s", host, client.api_version)
    return client


def connect_quick(host: str, timeout: float) -> EngineClient:
    """One attempt, every later call bounded by ``timeout`` too (the operator commands)."""
    return EngineClient(host, server_version(host, timeout), timeout=timeout, quick=True)
