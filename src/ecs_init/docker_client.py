"""The Docker adapter: every Engine API call this program makes goes through here.

Built on the Docker SDK for Python's low-level ``APIClient`` so each call maps
to one Engine API request.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Optional

import docker
import docker.errors
import requests

from ecs_init.config import Config, version_tuple
from ecs_init.errors import DockerUnavailable, ImageLoadError, InitError

log = logging.getLogger(__name__)

PREFERRED_MAX_API = "1.44"
PREFERRED_MIN_API = "1.25"
SDK_MIN_API = "1.24"  # the SDK refuses anything older
DEFAULT_WAIT_TIMEOUT = 300.0  # seconds to wait for a daemon that is not up yet
REQUEST_TIMEOUT = 60
LOAD_TIMEOUT = 1800

# Errors that mean "the daemon is not there (right now)".
# A daemon that stops while a long request (wait) is open ends the response
# mid-body: requests reports that as ChunkedEncodingError.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    FileNotFoundError,
)


def negotiate_api_version(server_max: str, server_min: str = "") -> str:
    """Pick the API version: the server's, capped at 1.44; refuse below 1.24.

    Servers older than 1.25 get their own version (1.24): the SDK cannot
    speak the 1.21–1.23 dialects the Go client still allows.
    """
    chosen = server_max
    if version_tuple(chosen) > version_tuple(PREFERRED_MAX_API):
        chosen = PREFERRED_MAX_API
    if server_min and version_tuple(chosen) < version_tuple(server_min):
        chosen = server_min
    if version_tuple(chosen) < version_tuple(SDK_MIN_API):
        raise InitError(f"Docker API version {server_max} is too old: at least {SDK_MIN_API} is needed")
    return chosen


def docker_base_url(cfg: Config) -> str:
    return cfg.docker_host()


class Backoff:
    """Exponential backoff with jitter: ``start`` doubling up to ``cap``."""

    def __init__(self, start: float, cap: float, jitter: float, rng: Optional[random.Random] = None):
        self.start = start
        self.cap = cap
        self.jitter = jitter
        self.current = start
        self.rng = rng or random.Random()

    def next(self) -> float:
        base = self.current
        self.current = min(self.current * 2, self.cap)
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def reset(self) -> None:
        self.current = self.start


def wait_for_daemon(
    base_url: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Ping ``base_url`` until it answers; return its /version. Raise after ``timeout``."""
    deadline = clock() + timeout
    backoff = Backoff(1.0, 10.0, 0.2)
    attempt = 0
    last_error = ""
    while True:
        attempt += 1
        try:
            probe = docker.APIClient(base_url=base_url, version=SDK_MIN_API, timeout=10)
            try:
                probe.ping()
                info: dict[str, Any] = probe.version(api_version=False)
                return info
            finally:
                probe.close()
        except (docker.errors.DockerException, *CONNECTION_ERRORS) as err:
            last_error = _one_line(err)
        remaining = deadline - clock()
        if remaining <= 0:
            raise DockerUnavailable(f"Docker daemon at {base_url} did not answer within {timeout:.0f}s: {last_error}")
        delay = min(backoff.next(), remaining)
        if attempt == 1 or attempt % 5 == 0:
            log.warning(
                "waiting for the Docker daemon at %s (attempt %d, %.0fs left): %s",
                base_url,
                attempt,
                remaining,
                last_error,
            )
        sleep(delay)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class DockerAdapter:
    """A connected Docker engine."""

    def __init__(self, api: docker.APIClient, base_url: str, server_version: Mapping[str, Any]):
        self.api = api
        self.base_url = base_url
        self.server_version = dict(server_version)

    # ------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, cfg: Config, timeout: Optional[float] = None) -> DockerAdapter:
        base_url = docker_base_url(cfg)
        wait = timeout if timeout is not None else cfg.number("ECS_INIT_DOCKER_WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT)
        info = wait_for_daemon(base_url, wait)
        version = negotiate_api_version(str(info.get("ApiVersion", "")), str(info.get("MinAPIVersion", "")))
        api = docker.APIClient(base_url=base_url, version=version, timeout=REQUEST_TIMEOUT)
        log.debug("connected to Docker %s at %s, API %s", info.get("Version"), base_url, version)
        return cls(api, base_url, info)

    @property
    def api_version(self) -> str:
        return str(self.api.api_version)

    def reconnect(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """After the daemon went away: wait for it again and renew the client.

        ``sleep`` lets the caller shorten or interrupt the waits between pings
        (it may raise to abandon the wait).
        """
        info = wait_for_daemon(self.base_url, timeout, sleep=sleep)
        version = negotiate_api_version(str(info.get("ApiVersion", "")), str(info.get("MinAPIVersion", "")))
        try:
            self.api.close()
        except Exception:  # noqa: BLE001 - a dead session may fail to close
            pass
        self.api = docker.APIClient(base_url=self.base_url, version=version, timeout=REQUEST_TIMEOUT)
        self.server_version = dict(info)

    def ping(self) -> bool:
        try:
            return bool(self.api.ping())
        except (docker.errors.DockerException, *CONNECTION_ERRORS):
            return False

    def probe(self, timeout: float = 5.0) -> bool:
        """Ping over a new connection.

        A stopping dockerd closes its listening socket first but keeps serving
        open keep-alive connections, so ``ping`` on the pooled client can
        still succeed while the daemon is going away; a new connection cannot.
        """
        try:
            fresh = docker.APIClient(base_url=self.base_url, version=self.api_version, timeout=timeout)
        except (docker.errors.DockerException, *CONNECTION_ERRORS):
            return False
        try:
            return bool(fresh.ping())
        except (docker.errors.DockerException, *CONNECTION_ERRORS):
            return False
        finally:
            fresh.close()

    # ------------------------------------------------------------ images

    def image_id(self, ref: str) -> Optional[str]:
        try:
            return str(self.api.inspect_image(ref)["Id"])
        except docker.errors.NotFound:
            return None

    def image_exists(self, ref: str) -> bool:
        return self.image_id(ref) is not None

    def tag_image(self, image_id: str, repository: str, tag: str) -> None:
        self.api.tag(image_id, repository, tag, force=True)

    def load_image(self, stream: BinaryIO) -> list[str]:
        """Stream a ``docker save`` archive to the engine; return the loaded names.

        ``stream`` is read in chunks by the HTTP layer: memory does not grow
        with the tarball's size.
        """
        loader = docker.APIClient(base_url=self.base_url, version=self.api_version, timeout=LOAD_TIMEOUT)
        loaded: list[str] = []
        try:
            for message in _as_messages(loader.load_image(stream, quiet=True)):
                if "error" in message or "errorDetail" in message:
                    detail = message.get("error") or message.get("errorDetail", {}).get("message", "")
                    raise ImageLoadError(f"Docker refused the image archive: {detail}")
                text = str(message.get("stream", "")).strip()
                if text.startswith("Loaded image"):
                    loaded.append(text.split(":", 1)[1].strip())
        except docker.errors.APIError as err:
            raise ImageLoadError(f"Docker refused the image archive: {err.explanation or err}") from err
        except CONNECTION_ERRORS as err:
            raise ImageLoadError(f"lost the Docker daemon while loading the image: {_one_line(err)}") from err
        finally:
            loader.close()
        return loaded

    # ------------------------------------------------------------ containers

    def container_state(self, name: str) -> Optional[dict[str, Any]]:
        """``docker inspect`` of the container, or None when there is none."""
        try:
            result: dict[str, Any] = self.api.inspect_container(name)
            return result
        except docker.errors.NotFound:
            return None

    def remove_container(self, name: str) -> bool:
        try:
            self.api.remove_container(name, force=True)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as err:
            if err.status_code == 409 and "already in progress" in str(err.explanation):
                return True
            raise

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        """Create from an Engine API create body (see agent_spec.ContainerSpec.engine_body)."""
        api = self.api
        host = dict(body["HostConfig"])
        host_config = api.create_host_config(
            binds=list(host.get("Binds", [])),
            network_mode=host.get("NetworkMode"),
            userns_mode=host.get("UsernsMode"),
            init=host.get("Init"),
            cap_add=host.get("CapAdd") or None,
            privileged=bool(host.get("Privileged", False)),
            pid_mode=host.get("PidMode") or None,
            security_opt=host.get("SecurityOpt") or None,
            log_config=host.get("LogConfig"),
        )
        env = list(body.get("Env", []))
        created = api.create_container(
            image=body["Image"],
            name=name,
            environment=env,
            labels=dict(body.get("Labels") or {}),
            host_config=host_config,
        )
        return str(created["Id"])

    def start_container(self, name: str) -> None:
        self.api.start(name)

    def wait_container(self, name: str) -> int:
        """Block until the container exits; return its exit code."""
        result = self.api.wait(name, timeout=None)
        return int(result.get("StatusCode", -1))

    def stop_container(self, name: str, grace: int = 10) -> bool:
        try:
            self.api.stop(name, timeout=grace)
            return True
        except docker.errors.NotFound:
            return False

    def logs_tail(self, name: str, lines: int = 200) -> list[str]:
        try:
            raw = self.api.logs(name, stdout=True, stderr=True, timestamps=True, tail=lines)
        except docker.errors.NotFound:
            return []
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        return [line for line in text.splitlines() if line.strip()]

    # ------------------------------------------------------------ networks

    def default_bridge_name(self) -> Optional[str]:
        """The interface of the bridge network marked as Docker's default bridge."""
        for network in self.api.networks():
            options = network.get("Options") or {}
            if options.get("com.docker.network.bridge.default_bridge") == "true":
                name = options.get("com.docker.network.bridge.name")
                return str(name) if name else None
        return None

    def close(self) -> None:
        self.api.close()


def _as_messages(stream: Any) -> Iterable[dict[str, Any]]:
    if stream is None:
        return []
    out = []
    for item in stream:
        if isinstance(item, dict):
            out.append(item)
    return out
