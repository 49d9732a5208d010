"""Every setting this program reads, as data: one table, one row per setting.

A row names the setting, its kind (which fixes how a value is read and
checked), its default, its range, where it is read from and one line of
documentation. Everything else is derived from this table:

* the typed accessors of ``Config`` (``flag``, ``seconds``, ``count``,
  ``text``) read a ``Setting``, never a string literal;
* ``validate`` is the one rule for a value (booleans by their Go rule,
  numbers by their range); ``Config`` logs what it says once and uses the
  default, and ``check`` FAILs or WARNs with the same words;
* ``known_keys.OWN_KEYS`` (for ``check``'s did-you-mean) and the README's
  configuration reference (``markdown_table``; a test keeps them equal).

Pure: nothing here reads a file or the environment.
"""

from __future__ import annotations

import enum
import math

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional


class Kind(enum.Enum):
    TEXT = "text"
    URL = "URL"
    JSON = "JSON object"
    CHOICE = "one of"
    SECONDS = "seconds"
    COUNT = "count"
    EXACT_TRUE = "exactly true"  # only the string "true" is true; "1", "True"… are false (Go: == "true")
    PARSE_BOOL = "ParseBool"  # Go's strconv.ParseBool; anything unparsable is logged and false


class Source(enum.Enum):
    ENV_THEN_FILES = "environment, then ecs.config"  # SPEC §3 "Beyond": works from /etc/ecs/ecs.config too
    ENV = "environment only"
    FILES = "ecs.config files"  # the merged files (what the agent gets)


BOOLEAN_KINDS = (Kind.EXACT_TRUE, Kind.PARSE_BOOL)
NUMBER_KINDS = (Kind.SECONDS, Kind.COUNT)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class Setting:
    """One row of the table. (A plain class, not a dataclass: this module is on every action's
    start-up path, and generating dataclass methods costs milliseconds.)"""

    __slots__ = ("name", "kind", "default", "doc", "source", "low", "high", "choices")

    def __init__(
        self,
        name: str,
        kind: Kind,
        default: str,  # as it would be written in ecs.config
        doc: str,
        source: Source = Source.ENV_THEN_FILES,
        low: Optional[float] = None,  # numbers: the accepted range, both ends included
        high: Optional[float] = None,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.doc = doc
        self.source = source
        self.low = low
        self.high = high
        self.choices = choices

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, {self.kind.name})"

    @property
    def default_number(self) -> float:
        return float(self.default)


DAY = 86400.0

# ---------------------------------------------------------------- the table

LOGLEVEL = Setting(
    "ECS_LOGLEVEL",
    Kind.CHOICE,
    "info",
    "this program's log level",
    choices=("debug", "info", "warn", "error", "crit", "none"),
)
DOCKER_HOST = Setting(
    "DOCKER_HOST",
    Kind.URL,
    "unix:///var/run/docker.sock",
    "the Docker endpoint (`unix://` sockets only)",
    source=Source.ENV,
)
PATH_PREFIX = Setting(
    "ECS_INIT_PATH_PREFIX", Kind.TEXT, "", "root prefix for every host path (development and tests)", source=Source.ENV
)
DOCKER_WAIT_TIMEOUT = Setting(
    "ECS_INIT_DOCKER_WAIT_TIMEOUT",
    Kind.SECONDS,
    "300",
    "seconds to wait for a Docker daemon that is not up yet (boot)",
    low=0,
    high=DAY,
)
BACKOFF_RESET_SECONDS = Setting(
    "ECS_INIT_BACKOFF_RESET_SECONDS",
    Kind.SECONDS,
    "60",
    "uptime after which the restart backoff starts again at 0.5 s",
    low=0,
    high=DAY,
)
ROLLBACK_FAILURES = Setting(
    "ECS_INIT_ROLLBACK_FAILURES",
    Kind.COUNT,
    "3",
    "an upgraded agent failing this often within the window is rolled back (0: never)",
    low=0,
    high=1000,
)
ROLLBACK_WINDOW = Setting(
    "ECS_INIT_ROLLBACK_WINDOW", Kind.SECONDS, "300", "the rollback window, in seconds", low=1, high=7 * DAY
)
HEALTH_INTERVAL = Setting(
    "ECS_INIT_HEALTH_INTERVAL",
    Kind.SECONDS,
    "30",
    "while supervising, probe the agent's `/v1/metadata` this often",
    low=0.1,
    high=3600,
)
HEALTH_TIMEOUT = Setting(
    "ECS_INIT_HEALTH_TIMEOUT",
    Kind.SECONDS,
    "300",
    "an agent whose endpoint fails this long while its container runs is restarted (0: never)",
    low=0,
    high=7 * DAY,
)
LOCK_TIMEOUT = Setting(
    "ECS_INIT_LOCK_TIMEOUT",
    Kind.SECONDS,
    "60",
    "seconds a second concurrent pre-start/start/post-stop/reload-cache waits for the first",
    low=0,
    high=DAY,
)
READY_TIMEOUT = Setting(
    "ECS_INIT_READY_TIMEOUT",
    Kind.SECONDS,
    "120",
    "`Type=notify` unit: seconds to wait for `/v1/metadata` before sending READY=1 anyway",
    low=0,
    high=DAY,
)
READY_URL = Setting(
    "ECS_INIT_READY_URL", Kind.URL, "", "the URL probed for readiness and health (blank: the agent's `/v1/metadata`)"
)
S3_ENDPOINT = Setting(
    "ECS_INIT_S3_ENDPOINT",
    Kind.URL,
    "",
    "base URL of an S3 mirror; objects fetched path-style `<endpoint>/<bucket>/<key>`",
)
ECS_ENDPOINT = Setting(
    "ECS_INIT_ECS_ENDPOINT",
    Kind.URL,
    "",
    "the ECS endpoint `check --network` tests (blank: the agent's `ECS_BACKEND_HOST`, else "
    "`https://ecs.<region>.<partition DNS suffix>`)",
)
IMDS_ENDPOINT = Setting(
    "ECS_INIT_IMDS_ENDPOINT",
    Kind.URL,
    "http://169.254.169.254",
    "instance metadata service (only consulted to download)",
)
LOG_DRIVER = Setting("ECS_LOG_DRIVER", Kind.TEXT, "json-file", "the agent container's log driver")
LOG_OPTS = Setting(
    "ECS_LOG_OPTS", Kind.JSON, "", "the agent container's log options (an empty object keeps the size/num defaults)"
)
LOG_FILE_SIZE = Setting(
    "ECS_INIT_DOCKER_LOG_FILE_SIZE", Kind.TEXT, "16m", "json-file `max-size` when no options are given"
)
LOG_FILE_NUM = Setting("ECS_INIT_DOCKER_LOG_FILE_NUM", Kind.TEXT, "4", "json-file `max-file` when no options are given")
AGENT_LABELS = Setting(
    "ECS_AGENT_LABELS",
    Kind.JSON,
    "",
    "JSON object of string→string: labels of the agent container",
    source=Source.FILES,
)
APPARMOR_PROFILE = Setting(
    "ECS_AGENT_APPARMOR_PROFILE",
    Kind.TEXT,
    "ecs-agent-default",
    "the AppArmor profile the agent runs under (blank: the default); "
    "pre-start writes and loads only `ecs-agent-default`",
)
RUN_PRIVILEGED = Setting("ECS_AGENT_RUN_PRIVILEGED", Kind.EXACT_TRUE, "false", "privileged agent container")
PID_NAMESPACE_HOST = Setting(
    "ECS_AGENT_PID_NAMESPACE_HOST", Kind.PARSE_BOOL, "false", "the agent shares the host's PID namespace"
)
SKIP_LOCALHOST_TRAFFIC_FILTER = Setting(
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER", Kind.PARSE_BOOL, "false", "do not drop non-local packets to 127.0.0.0/8"
)
ALLOW_OFFHOST_INTROSPECTION_ACCESS = Setting(
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", Kind.PARSE_BOOL, "false", "do not block port 51678 from off-host"
)
ENABLE_GPU_SUPPORT = Setting(
    "ECS_ENABLE_GPU_SUPPORT", Kind.EXACT_TRUE, "false", "NVIDIA GPU facts for the agent (pre-start writes them)"
)
GMSA_SUPPORTED = Setting(
    "ECS_GMSA_SUPPORTED", Kind.EXACT_TRUE, "false", "gMSA: realm check and the credentials-fetcher socket"
)
DOMAIN_JOINED_LINUX_INSTANCE = Setting(
    "ECS_DOMAIN_JOINED_LINUX_INSTANCE",
    Kind.EXACT_TRUE,
    "false",
    "set to true for the agent on a domain-joined gMSA host",
)
CREDENTIALS_FETCHER_HOST = Setting(
    "CREDENTIALS_FETCHER_HOST",
    Kind.URL,
    "unix:///var/credentials-fetcher/socket/credentials_fetcher.sock",
    "the credentials-fetcher socket (gMSA)",
    source=Source.ENV,
)
EXTERNAL = Setting(
    "ECS_EXTERNAL", Kind.EXACT_TRUE, "false", "ECS Anywhere: no task ENI, no capabilities, `/root/.aws` credentials"
)
HTTPS_PROXY = Setting(
    "HTTPS_PROXY",
    Kind.URL,
    "",
    "the download goes through it (else `HTTP_PROXY`) unless `NO_PROXY` names the host; never loopback or metadata",
    source=Source.ENV,
)
HTTP_PROXY = Setting(
    "HTTP_PROXY", Kind.URL, "", "the proxy for http URLs (and https without `HTTPS_PROXY`)", source=Source.ENV
)
NO_PROXY = Setting(
    "NO_PROXY",
    Kind.TEXT,
    "",
    "hosts reached directly: domains (`.domain`: subdomains only), IPs, CIDRs, optional `:port`, `*`",
    source=Source.ENV,
)
REGION = Setting("AWS_DEFAULT_REGION", Kind.TEXT, "", "external mode: the region to download the agent for")

SETTINGS: tuple[Setting, ...] = (
    LOGLEVEL,
    DOCKER_HOST,
    DOCKER_WAIT_TIMEOUT,
    BACKOFF_RESET_SECONDS,
    ROLLBACK_FAILURES,
    ROLLBACK_WINDOW,
    LOCK_TIMEOUT,
    READY_TIMEOUT,
    READY_URL,
    HEALTH_INTERVAL,
    HEALTH_TIMEOUT,
    S3_ENDPOINT,
    IMDS_ENDPOINT,
    ECS_ENDPOINT,
    SKIP_LOCALHOST_TRAFFIC_FILTER,
    ALLOW_OFFHOST_INTROSPECTION_ACCESS,
    AGENT_LABELS,
    LOG_DRIVER,
    LOG_OPTS,
    LOG_FILE_SIZE,
    LOG_FILE_NUM,
    RUN_PRIVILEGED,
    PID_NAMESPACE_HOST,
    APPARMOR_PROFILE,
    ENABLE_GPU_SUPPORT,
    GMSA_SUPPORTED,
    DOMAIN_JOINED_LINUX_INSTANCE,
    CREDENTIALS_FETCHER_HOST,
    EXTERNAL,
    REGION,
    HTTPS_PROXY,
    HTTP_PROXY,
    NO_PROXY,
    PATH_PREFIX,
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


# ---------------------------------------------------------------- reading a value


def parse_bool(value: str) -> Optional[bool]:
    """Go's strconv.ParseBool: True/False, or None when unparsable."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def read_flag(setting: Setting, raw: str) -> tuple[bool, Optional[str]]:
    """``raw`` as the setting's boolean rule reads it, and why it deserves a warning (or None)."""
    key = setting.name
    if setting.kind is Kind.EXACT_TRUE:
        if raw == "true" or raw == "" or raw in _FALSE:
            return raw == "true", None
        if raw in _TRUE:
            return False, f"{key}={raw!r} is not exactly 'true', so it is off (only the word true turns it on)"
        return False, f"{key}={raw!r} is not 'true', so it is off"
    parsed = parse_bool(raw)
    if parsed is None:
        return False, (f"{key}={raw!r} is not a boolean; treating it as false" if raw else None)
    return parsed, None


def read_number(setting: Setting, raw: str) -> tuple[float, Optional[str]]:
    """``raw`` as a number in the setting's range, or its default with why (the one rule for numbers)."""
    default = setting.default_number
    if raw.strip() == "":
        return default, None
    try:
        value = float(raw) if setting.kind is Kind.SECONDS else float(int(raw.strip()))
    except ValueError:
        what = "a number of seconds" if setting.kind is Kind.SECONDS else "a whole number"
        return default, f"{setting.name}={raw!r} is not {what}; using {setting.default}"
    low = -math.inf if setting.low is None else setting.low
    high = math.inf if setting.high is None else setting.high
    if not math.isfinite(value) or not low <= value <= high:
        return default, f"{setting.name}={raw!r} is out of range [{_num(low)}, {_num(high)}]; using {setting.default}"
    return value, None


def validate(setting: Setting, raw: str) -> Optional[str]:
    """Why ``raw`` is not a good value for ``setting`` (None when it is)."""
    if setting.kind in BOOLEAN_KINDS:
        return read_flag(setting, raw)[1]
    if setting.kind in NUMBER_KINDS:
        return read_number(setting, raw)[1]
    if setting.kind is Kind.CHOICE and raw.strip() and raw.strip().lower() not in setting.choices:
        return f"{setting.name}={raw!r} is not one of {', '.join(setting.choices)}; using {setting.default}"
    return None


def rules_disagree(setting: Setting, raw: str) -> Optional[str]:
    """For ``check``: a boolean value only one of SPEC §3's two rules takes as true."""
    if setting.kind not in BOOLEAN_KINDS or raw == "true" or raw not in _TRUE:
        return None
    key = setting.name
    if setting.kind is Kind.EXACT_TRUE:
        return (
            f"{key}={raw!r} is off for ecs-init, which turns this on only for the exact word true "
            "(as the Go ecs-init does); other readers of ParseBool take it as true"
        )
    return f"{key}={raw!r} is on (read like Go's ParseBool), but ecs-init's other switches accept only the word true"


def _num(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return str(int(value)) if value == int(value) else str(value)


# ---------------------------------------------------------------- documentation


def kind_text(setting: Setting) -> str:
    if setting.kind in NUMBER_KINDS:
        return f"{setting.kind.value}, {_num(setting.low or 0)}–{_num(setting.high or math.inf)}"
    if setting.kind is Kind.CHOICE:
        return "one of " + ", ".join(setting.choices)
    return setting.kind.value


def markdown_table() -> str:
    """The README's configuration reference (tests/unit/test_settings_table.py keeps them equal)."""
    lines = ["| setting | kind | default | read from | effect |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else ""
        lines.append(f"| `{s.name}` | {kind_text(s)} | {default} | {s.source.value} | {s.doc} |")
    return "\n".join(lines)
