"""Which HTTP proxy a request goes through: HTTPS_PROXY/HTTP_PROXY and NO_PROXY.

One rule for the agent's traffic and for this program's download (SPEC
§10), the one the ECS agent applies (its ``httpproxy`` package):

- an ``https`` URL uses ``HTTPS_PROXY``, else ``HTTP_PROXY``; an ``http``
  URL uses ``HTTP_PROXY``. Upper-case names win over lower-case ones; an
  empty value counts as unset. A value without a scheme (``10.0.0.131:3128``,
  the form the AWS documentation uses) is an ``http://`` proxy.
- never for ``localhost`` or a loopback address;
- never for a host ``NO_PROXY`` names: ``*`` (everything), an IP address
  (optionally ``:port``), a CIDR block, or a domain — ``example.com`` matches
  the domain and its subdomains, ``.example.com`` and ``*.example.com`` only
  the subdomains — optionally with ``:port``.

Pure: the environment is passed in, nothing is read or contacted here.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Optional, Union

from ecs_init.core import settings

DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080}
PROXY_SCHEMES = ("http", "https", "socks5")

_Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_Addr = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class Proxy:
    """A proxy to go through: its URL as written and where it came from (the variable's name)."""

    url: str
    variable: str

    @property
    def parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        try:
            port = self.parts.port
        except ValueError:
            port = None
        return port or DEFAULT_PORTS.get(self.parts.scheme, 80)

    @property
    def credentials(self) -> Optional[tuple[str, str]]:
        parts = self.parts
        if parts.username is None:
            return None
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")


def env_value(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """(value, variable name) of ``NAME`` or ``name``; upper case first, empty counts as unset."""
    for variable in (name.upper(), name.lower()):
        value = env.get(variable, "").strip()
        if value:
            return value, variable
    return "", ""


def normalize(value: str) -> Optional[str]:
    """A proxy setting as a URL (``host:port`` becomes ``http://host:port``); None when unusable."""
    text = value.strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
        return None
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    return text


def configured(env: Mapping[str, str], scheme: str) -> Optional[Proxy]:
    """The proxy set for ``scheme`` URLs, before NO_PROXY is considered."""
    names = [settings.HTTPS_PROXY.name, settings.HTTP_PROXY.name] if scheme == "https" else [settings.HTTP_PROXY.name]
    for name in names:
        value, variable = env_value(env, name)
        if value:
            url = normalize(value)
            if url is not None:
                return Proxy(url, variable)
    return None


def invalid_settings(env: Mapping[str, str]) -> list[str]:
    """The proxy variables whose value is not a usable proxy URL (they are ignored)."""
    bad = []
    for name in (settings.HTTPS_PROXY.name, settings.HTTP_PROXY.name):
        value, variable = env_value(env, name)
        if value and normalize(value) is None:
            bad.append(variable)
    return bad


def _ip(text: str) -> Optional[_Addr]:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _split_host_port(entry: str) -> tuple[str, str]:
    """``host:port``, ``[v6]:port`` -> (host, port); anything else -> (entry, "")."""
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if sep and rest.startswith(":") and rest[1:].isdigit():
            return host, rest[1:]
        return entry.strip("[]"), ""
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, port
    return entry, ""


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (its value) excludes ``host:port`` from the proxy."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    address = _ip(host)
    if address is not None and address.is_loopback:
        return True
    port_text = str(port)
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                network: _Net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address is not None and address in network:
                return True
            continue
        name, entry_port = _split_host_port(entry)
        if not name:
            continue
        if entry_port and entry_port != port_text:
            continue
        entry_ip = _ip(name)
        if entry_ip is not None:
            if address is not None and address == entry_ip:
                return True
            continue
        if name.startswith("*."):
            name = name[1:]
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(url: str, env: Mapping[str, str]) -> Optional[Proxy]:
    """The proxy a request for ``url`` goes through with environment ``env``, or None (direct)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    chosen = configured(env, scheme)
    if chosen is None:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        port = DEFAULT_PORTS[scheme]
    no_proxy, _ = env_value(env, settings.NO_PROXY.name)
    if bypassed(parts.hostname, port, no_proxy):
        return None
    return chosen
