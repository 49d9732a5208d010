"""Shared, typed fakes for unit tests.

``FakeEngine`` is an in-memory Docker Engine implementing
``ecs_init.docker.api.Engine`` (mypy checks this file against the
protocol: see ``_conforms`` at the end). It keeps images, tags and
containers in dicts, raises only the client's own exceptions, and lets a
test script failures (``fail``), exit codes (``exit_codes``) and a daemon
that went away (``alive``). With ``hold_waits`` a wait lasts until the
container is stopped (``stop_container``) or made to exit (``exit``),
calling its ``on_idle`` every ``idle_every`` seconds meanwhile, as the real
client does after each ping of the daemon.

An image "tarball" for ``load_image`` is any stream whose content is
``image=<image ID>``: loading it adds that image and tags it
``amazon/amazon-ecs-agent:latest``; anything else is refused the way Docker
refuses a truncated archive.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Mapping, Optional

from ecs_init.docker.api import STOP_GRACE, Engine, LogLine, Readable
from ecs_init.docker.errors import Conflict, EngineError, EngineUnavailable, NotFound

LATEST = "amazon/amazon-ecs-agent:latest"


def tarball_text(image_id: str) -> str:
    """The content of a fake tarball holding ``image_id``."""
    return f"image={image_id}"


class FakeEngine:
    """An in-memory Docker Engine (see the module docstring)."""

    def __init__(self, *, api_version: str = "1.44", bridge: Optional[str] = "docker0") -> None:
        self.host = "unix:///run/fake-docker.sock"
        self.api_version = api_version
        self.server_version: dict[str, Any] = {"Version": "fake", "ApiVersion": api_version, "MinAPIVersion": "1.12"}
        self.bridge = bridge
        self.images: set[str] = set()
        self.tags: dict[str, str] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # every create body, in order
        self.exit_codes: list[int] = []  # what successive waits return (then 0)
        self.logs: list[LogLine] = []
        self.alive = True  # False: probe() fails and reconnect() raises
        self.on_exit: Optional[Callable[[int], None]] = None  # called with each exit code a wait returns
        self.calls: list[str] = []
        self.hold_waits = False  # True: a wait blocks until the container stops (see the module docstring)
        self.idle_every = 0.05
        self._changed = threading.Condition()
        self.tag_calls: list[tuple[str, str, str]] = []
        self.loaded: list[str] = []
        self._failures: dict[str, tuple[EngineError, int]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ scripting

    def add_image(self, image_id: str, *refs: str) -> None:
        self.images.add(image_id)
        for ref in refs:
            self.tags[ref] = image_id

    def fail(self, method: str, error: EngineError, times: int = -1) -> None:
        """Make ``method`` raise ``error`` for the next ``times`` calls (-1: until ``heal``)."""
        self._failures[method] = (error, times)

    def heal(self, method: Optional[str] = None) -> None:
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        if method in self._failures:
            error, times = self._failures[method]
            if times > 0:
                if times == 1:
                    del self._failures[method]
                else:
                    self._failures[method] = (error, times - 1)
            raise error

    def _container(self, name: str) -> dict[str, Any]:
        if name not in self.containers:
            raise NotFound(f"No such container: {name}", 404)
        return self.containers[name]

    # ------------------------------------------------------------ the daemon

    def probe(self, timeout: Optional[float] = None) -> bool:
        self.calls.append("probe")
        return self.alive

    def reconnect(self, timeout: float, sleep: Callable[[float], None] = lambda _s: None) -> None:
        self._call("reconnect")
        if not self.alive:
            raise EngineUnavailable(f"Docker daemon at {self.host} did not answer within {timeout:.0f}s")

    def info(self) -> dict[str, Any]:
        self._call("info")
        return {"DockerRootDir": "/var/lib/docker", "ServerVersion": "fake"}

    def networks(self) -> list[dict[str, Any]]:
        self._call("networks")
        if self.bridge is None:
            return [{"Name": "host", "Driver": "host", "Options": {}}]
        options = {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": self.bridge}
        return [{"Name": "bridge", "Driver": "bridge", "Options": options}]

    def close(self) -> None:
        self.calls.append("close")

    # ------------------------------------------------------------ images

    def image_id(self, ref: str) -> Optional[str]:
        self._call("image_id")
        if ref in self.images:
            return ref
        return self.tags.get(ref)

    def tag_image(self, image_id: str, repository: str, tag: str) -> None:
        self.tag_calls.append((image_id, repository, tag))
        self._call("tag_image")
        if image_id not in self.images:
            raise NotFound(f"No such image: {image_id}", 404)
        self.tags[f"{repository}:{tag}"] = image_id

    def load_image(self, stream: Readable) -> list[str]:
        self._call("load_image")
        data = b""
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"image="):
            raise EngineError("Docker refused the image archive: unexpected EOF", 500)
        image = data[len(b"image=") :].decode()
        self.add_image(image, LATEST)
        self.loaded.append(image)
        return [LATEST]

    # ------------------------------------------------------------ containers

    def container_state(self, name: str) -> Optional[dict[str, Any]]:
        self._call("container_state")
        return self.containers.get(name)

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        self._call("create_container")
        image = str(body["Image"])
        if name in self.containers:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use', 409)
        image_id = self.image_id(image)
        if image_id is None:
            raise NotFound(f"No such image: {image}", 404)
        cid = f"{next(self._ids):064x}"
        self.created.append(dict(body))
        self.containers[name] = {
            "Id": cid,
            "Name": "/" + name,
            "Image": image_id,
            "Config": {"Image": image, "Env": list(body.get("Env") or []), "Labels": dict(body.get("Labels") or {})},
            "HostConfig": dict(body.get("HostConfig") or {}),
            "State": {"Status": "created", "Running": False, "ExitCode": 0},
        }
        return cid

    def start_container(self, name: str) -> None:
        self._call("start_container")
        self._container(name)["State"].update(Status="running", Running=True)

    def wait_container(self, name: str, on_idle: Optional[Callable[[], None]] = None) -> int:
        self._call("wait_container")
        state = self._container(name)["State"]
        if self.hold_waits:
            with self._changed:
                while state["Running"] and self.hold_waits:
                    if not self._changed.wait(self.idle_every) and on_idle is not None:
                        on_idle()
            if not state["Running"]:
                return int(state["ExitCode"])
        code = self.exit_codes.pop(0) if self.exit_codes else 0
        state.update(Status="exited", Running=False, ExitCode=code)
        if self.on_exit is not None:
            self.on_exit(code)
        return code

    def stop_container(self, name: str, grace: int = STOP_GRACE, timeout: Optional[float] = None) -> bool:
        self._call("stop_container")
        state = self.containers.get(name, {}).get("State")
        if not state or not state["Running"]:
            return False
        self.exit(name, 0)
        return True

    def exit(self, name: str, code: int) -> None:
        """The running container ``name`` exits with ``code`` (a held wait returns it)."""
        with self._changed:
            self._container(name)["State"].update(Status="exited", Running=False, ExitCode=code)
            self._changed.notify_all()

    def remove_container(self, name: str) -> bool:
        self._call("remove_container")
        if self.containers.get(name, {}).get("State", {}).get("Running"):
            self.exit(name, 137)  # killed by the forced removal
        return self.containers.pop(name, None) is not None

    def logs_tail(self, name: str, lines: int = 200) -> list[LogLine]:
        self._call("logs_tail")
        return list(self.logs[-lines:]) if name in self.containers else []


def _conforms(engine: FakeEngine) -> Engine:
    """mypy proves here that FakeEngine implements the Engine protocol."""
    return engine
