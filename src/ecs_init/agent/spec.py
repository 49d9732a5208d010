"""The agent container's configuration (SPEC §3), as a pure function.

``build_spec(cfg, facts)`` takes the loaded configuration and facts gathered
from the host (``hostfacts.gather``) and returns the exact create config.
Nothing here touches the host or Docker.
"""

from __future__ import annotations

import json
import logging

from ecs_init.agent.identity import AGENT_IMAGE, AGENT_NAME
from ecs_init.core import settings as S
from ecs_init.core.config import Config
from ecs_init.core.platform import Platform
from ecs_init.core.record import dataclass, field
from ecs_init.docker.api import version_tuple
from ecs_init.host.apparmor_profile import container_profile

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Optional

log = logging.getLogger(__name__)


UNIX = "unix://"
DEFAULT_CREDENTIALS_FETCHER_SOCKET = S.CREDENTIALS_FETCHER_HOST.default[len(UNIX) :]
DOCKER_SOCKET_TARGET = "/var/run/docker.sock"

SUPPORTED_LOG_DRIVERS = ("awslogs", "fluentd", "gelf", "json-file", "journald", "logentries", "syslog", "splunk")

# Binds whose source is a fixed host path (never under the root prefix).
FIXED_BINDS = (
    "/run/docker/plugins:/run/docker/plugins:ro",
    "/etc/docker/plugins:/etc/docker/plugins:ro",
    "/usr/lib/docker/plugins:/usr/lib/docker/plugins:ro",
    "/proc:/host/proc:ro",
    "/usr/lib:/usr/lib:ro",
    "/lib:/lib:ro",
    "/usr/lib64:/usr/lib64:ro",
    "/lib64:/lib64:ro",
    "/sbin:/host/sbin:ro",
    "/etc/alternatives:/etc/alternatives:ro",
    "/usr/sbin:/usr/sbin:ro",
    "/usr/bin/lsblk:/usr/bin/lsblk",
)
NSENTER = "/usr/bin/nsenter"
MODINFO_CANDIDATES = ("/sbin/modinfo", "/usr/sbin/modinfo")
CLOUD_INIT_RESULT = "/var/lib/cloud/data/result.json"
EXTERNAL_CREDS_BIND = "/root/.aws:/rotatingcreds:ro"


@dataclass(frozen=True)
class HostFacts:
    """What the spec depends on that only the host can tell."""

    platform: Platform
    docker_api_version: str = "1.44"
    existing: frozenset[str] = frozenset()  # host paths that exist
    directories: frozenset[str] = frozenset()  # host paths that are directories
    apparmor_enabled: bool = False
    gpu_devices: bool = False
    realm_output: str = ""  # output of `realm list` ("" when not run)

    def exists(self, path: str) -> bool:
        return path in self.existing or path in self.directories

    def is_dir(self, path: str) -> bool:
        return path in self.directories


@dataclass(frozen=True)
class SpecWarning:
    """Something in the configuration the spec could not use as written (``start`` logs it,
    ``render`` shows it, ``check`` reports it under the setting's name)."""

    key: str  # the setting it is about
    text: str
    replaced: bool = True  # the value was dropped or replaced (check: FAIL), not merely converted (WARN)

    def __str__(self) -> str:
        return self.text


@dataclass
class ContainerSpec:
    name: str
    image: str
    env: dict[str, str]
    labels: dict[str, str]
    binds: list[str]
    host_config: dict[str, Any]
    warnings: list[SpecWarning] = field(default_factory=list)

    def engine_body(self) -> dict[str, Any]:
        """The body of ``POST /containers/create`` (Engine API)."""
        host = dict(self.host_config)
        host["Binds"] = list(self.binds)
        return {
            "Image": self.image,
            "Env": [f"{key}={value}" for key, value in self.env.items()],
            "Labels": dict(self.labels),
            "HostConfig": host,
        }


def unix_socket_path(url: Optional[str]) -> Optional[str]:
    """The path of a ``unix://`` URL (possibly empty); None for anything else."""
    if url is not None and url.startswith(UNIX):
        return url[len(UNIX) :]
    return None


def credentials_fetcher_socket(cfg: Config) -> str:
    """The socket of ``CREDENTIALS_FETCHER_HOST=unix://<path>`` (process env), else the default."""
    return unix_socket_path(cfg.raw(S.CREDENTIALS_FETCHER_HOST)) or DEFAULT_CREDENTIALS_FETCHER_SOCKET


def gmsa_domain_joined(cfg: Config, realm_output: str) -> bool:
    return cfg.flag(S.GMSA_SUPPORTED) and "realm-name" in realm_output


def default_env(cfg: Config, platform: Platform) -> dict[str, str]:
    paths = cfg.paths
    return {
        "ECS_LOGFILE": "/log/ecs-agent.log",
        "ECS_DATADIR": "/data",
        "ECS_AGENT_CONFIG_FILE_PATH": paths.ecs_config_json,
        "ECS_UPDATE_DOWNLOAD_DIR": paths.cache_dir,
        "ECS_UPDATES_ENABLED": "true",
        "ECS_AVAILABLE_LOGGING_DRIVERS": '["json-file","syslog","awslogs","fluentd","none"]',
        "ECS_ENABLE_TASK_IAM_ROLE": "true",
        "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST": "true",
        "ECS_EBSTA_SUPPORTED": "true",
        "ECS_AGENT_LABELS": "",
        "ECS_VOLUME_PLUGIN_CAPABILITIES": '["efsAuth"]',
        "ECS_DETAILED_OS_FAMILY": platform.detailed_os_family,
        "ECS_ENABLE_TASK_ENI": "true",
        "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE": "true",
    }


def build_env(cfg: Config, facts: HostFacts, gpu_devices_appeared: Optional[bool] = None) -> dict[str, str]:
    """The agent's environment: defaults, then the SPEC §3 steps, later winning.

    ``gpu_devices_appeared`` is the result of waiting for NVIDIA devices when
    the instance file enables GPU support (None: no wait was needed).
    """
    platform = facts.platform
    env = default_env(cfg, platform)
    # 1. certificates and the credentials-fetcher socket
    if platform.certs_dir and facts.is_dir(platform.certs_dir):
        env["SSL_CERT_DIR"] = platform.certs_dir
    env["CREDENTIALS_FETCHER_HOST_DIR"] = credentials_fetcher_socket(cfg)
    # 2. gMSA on a domain-joined host
    if gmsa_domain_joined(cfg, facts.realm_output):
        env[S.DOMAIN_JOINED_LINUX_INSTANCE.name] = "true"
    # 3. the instance file, then the operator's file
    instance = dict(cfg.instance)
    if cfg.instance_flag(S.ENABLE_GPU_SUPPORT) and gpu_devices_appeared is False:
        log.warning(
            "ECS_ENABLE_GPU_SUPPORT=true in %s but no NVIDIA device appeared; dropping it", cfg.paths.instance_config
        )
        del instance[S.ENABLE_GPU_SUPPORT.name]
    env.update(instance)
    env.update(cfg.operator)
    # 4. external (ECS Anywhere) instances have no task ENIs
    if cfg.flag(S.EXTERNAL):
        env["ECS_ENABLE_TASK_ENI"] = "false"
    # 5. old Docker API
    if version_tuple(facts.docker_api_version) < (1, 25):
        env["ECS_ENABLE_TASK_ENI"] = "false"
    # 6. EBS task attach needs the mount directory
    if not facts.is_dir(cfg.paths.ebs_dir):
        env["ECS_EBSTA_SUPPORTED"] = "false"
    return env


def parse_labels(raw: str) -> tuple[dict[str, str], Optional[str]]:
    """``ECS_AGENT_LABELS`` → (labels, error). An error means: skip the labels."""
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        return {}, f"ECS_AGENT_LABELS is not valid JSON ({err}); starting the agent without labels"
    if not isinstance(value, dict):
        return {}, "ECS_AGENT_LABELS is not a JSON object of string to string; starting the agent without labels"
    bad = sorted(k.encode("unicode_escape").decode("ascii") for k, v in value.items() if not isinstance(v, str))
    if bad:
        return {}, (
            f"ECS_AGENT_LABELS is not a JSON object of string to string (the value of {', '.join(bad)} "
            "is not a string); starting the agent without labels"
        )
    return dict(value), None


def docker_socket_bind(cfg: Config) -> str:
    """The process env's ``unix://`` DOCKER_HOST mounted where the files' one points (default
    /var/run/docker.sock); without one, the whole /var/run."""
    source = unix_socket_path(cfg.raw(S.DOCKER_HOST))
    if source is None:
        return "/var/run:/var/run"
    target = unix_socket_path(cfg.merged.get(S.DOCKER_HOST.name)) or DOCKER_SOCKET_TARGET
    return f"{source}:{target}"


def build_binds(cfg: Config, facts: HostFacts, env: dict[str, str]) -> list[str]:
    paths = cfg.paths
    platform = facts.platform
    external = cfg.flag(S.EXTERNAL)
    binds = [
        docker_socket_bind(cfg),
        f"{paths.log_dir}:/log",
        f"{paths.data_dir}:/data",
        f"{paths.config_dir}:{paths.config_dir}",
        f"{paths.cache_dir}:{paths.cache_dir}",
        f"{platform.cgroup_mountpoint}:/sys/fs/cgroup",
        f"{paths.instance_config_dir}:{paths.instance_config_dir}",
        f"{paths.log_dir}/exec:/log/exec",
        *FIXED_BINDS,
    ]
    if platform.pki_dir and facts.exists(platform.pki_dir):
        binds.append(f"{platform.pki_dir}:{platform.pki_dir}:ro")
    if facts.exists(NSENTER):
        binds.append(f"{NSENTER}:{NSENTER}")
    for candidate in MODINFO_CANDIDATES:
        if facts.exists(candidate):
            binds.append(f"{candidate}:{candidate}")
            break
    if not external and facts.exists(CLOUD_INIT_RESULT):
        binds.append(f"{CLOUD_INIT_RESULT}:{CLOUD_INIT_RESULT}:ro")
    if facts.is_dir(paths.deps_dir):
        binds.append(f"{paths.deps_dir}:/managed-agents:ro")
    exec_dir = paths.deps_dir + "/execute-command"
    if facts.is_dir(exec_dir):
        binds.append(f"{exec_dir}/config:/managed-agents/execute-command/config")
    if S.read_flag(S.ENABLE_GPU_SUPPORT, env.get(S.ENABLE_GPU_SUPPORT.name, ""))[0] and facts.gpu_devices:
        binds.append(f"{paths.gpu_dir}:{paths.gpu_dir}")
    if cfg.flag(S.GMSA_SUPPORTED):
        socket = credentials_fetcher_socket(cfg)
        if facts.exists(socket):
            binds.append(f"{socket}:{socket}")
    if external:
        binds.append(EXTERNAL_CREDS_BIND)
    return binds


def parse_log_opts(raw: str, warnings: list[SpecWarning]) -> dict[str, str]:
    """``ECS_LOG_OPTS`` -> options (strings); an invalid value is a warning and no options."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as err:
        warnings.append(SpecWarning(S.LOG_OPTS.name, f"ECS_LOG_OPTS is not a valid JSON object ({err}); ignoring it"))
        return {}
    converted = sorted(
        str(k).encode("unicode_escape").decode("ascii") for k, v in parsed.items() if not isinstance(v, str)
    )
    if converted:
        text = f"ECS_LOG_OPTS: the value of {', '.join(converted)} is not a string (converted to one)"
        warnings.append(SpecWarning(S.LOG_OPTS.name, text, replaced=False))
    return {str(k): str(v) for k, v in parsed.items()}


def build_log_config(cfg: Config, warnings: list[SpecWarning]) -> dict[str, Any]:
    """The agent container's LogConfig (SPEC §3). Options are read (and warned about) even when an
    unsupported driver makes them unused, so that every problem is told at once."""
    driver = cfg.text(S.LOG_DRIVER)
    options = parse_log_opts(cfg.text(S.LOG_OPTS), warnings)
    if driver and driver not in SUPPORTED_LOG_DRIVERS:
        text = f"ECS_LOG_DRIVER={driver!r} is not supported; using json-file" + (
            " without ECS_LOG_OPTS" if options else ""
        )
        warnings.append(SpecWarning(S.LOG_DRIVER.name, text))
        driver = "json-file"
        options = {}
    if driver == "json-file" and not options:
        options = {
            "max-size": cfg.text(S.LOG_FILE_SIZE),
            "max-file": cfg.text(S.LOG_FILE_NUM),
        }
    return {"Type": driver, "Config": options}


def build_spec(cfg: Config, facts: HostFacts, gpu_devices_appeared: Optional[bool] = None) -> ContainerSpec:
    warnings: list[SpecWarning] = []
    env = build_env(cfg, facts, gpu_devices_appeared)
    labels, label_error = parse_labels(env[S.AGENT_LABELS.name])  # always set: default_env has it
    if label_error:
        warnings.append(SpecWarning(S.AGENT_LABELS.name, label_error))
    external = cfg.flag(S.EXTERNAL)
    host: dict[str, Any] = {
        "NetworkMode": "host",
        "UsernsMode": "host",
    }
    if version_tuple(facts.docker_api_version) >= (1, 25):
        host["Init"] = True
    host["CapAdd"] = [] if external else ["NET_ADMIN", "SYS_ADMIN"]
    if cfg.flag(S.RUN_PRIVILEGED):
        host["Privileged"] = True
    if cfg.flag(S.PID_NAMESPACE_HOST):
        host["PidMode"] = "host"
    if facts.apparmor_enabled:
        profile = container_profile(cfg.raw(S.APPARMOR_PROFILE))
        host["SecurityOpt"] = [f"apparmor:{profile}"]
    host["LogConfig"] = build_log_config(cfg, warnings)
    return ContainerSpec(
        name=AGENT_NAME,
        image=AGENT_IMAGE,
        env=env,
        labels=labels,
        binds=build_binds(cfg, facts, env),
        host_config=host,
        warnings=warnings,
    )


def candidate_paths(cfg: Config, platform: Platform) -> tuple[str, ...]:
    """Every host path whose existence the spec depends on (for hostfacts)."""
    paths = cfg.paths
    platform_dirs = tuple(d for d in (platform.certs_dir, platform.pki_dir) if d)
    return (
        *platform_dirs,
        NSENTER,
        *MODINFO_CANDIDATES,
        CLOUD_INIT_RESULT,
        paths.deps_dir,
        paths.deps_dir + "/execute-command",
        paths.ebs_dir,
        credentials_fetcher_socket(cfg),
    )
