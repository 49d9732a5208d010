"""The RPM and Debian packages (SPEC §12, issue 18), built here, inspected, installed and run.

Packages are built once per module with packaging/build-rpm.sh and
packaging/build-deb.sh (what `make rpm`/`make deb` run), with nvidia-ml-py
vendored once: a default build (no agent tarball) and an ``AGENT_TARBALL``
build bundling the stand-in agent, which is built into this module's own
temporary directory (release packages never contain it).

* metadata: ``rpm -qp`` (files, modes, --obsoletes, --provides, -R, scripts)
  and ``dpkg-deb -I``/``-c``; version ordering against the Go packages with
  rpm's and dpkg's own comparison;
* RPM scriptlets: run with their paths moved under a temporary root and a
  recording ``systemctl``;
* Debian: the real ``dpkg`` installs, upgrades, removes and purges the
  package in a throwaway root (``dpkg --root``; maintainer scripts run
  chrooted there under busybox, with a recording, state-keeping stand-in for
  deb-systemd-helper);
* the zipapp: its contents, its ``version``, and the program under the
  oldest supported Python (3.9) against the real engine;
* an in-place upgrade under a running supervisor: version A at its
  versioned path supervising the agent, version B installed over it (symlink
  swapped, A's file removed, as rpm and dpkg do), then an exit-42 self-update
  that needs imports A had not made yet.

The .deb installed with dpkg on a host booted with the real systemd, and its
unit driven with systemctl, is tests/integration/test_systemd_real.py.

Until the Engine client replaces the Docker SDK (the program still imports
``docker`` while that work is unmerged), the zipapp cannot talk to Docker on
its own: the Docker-facing tests then run it with the test venv's
site-packages on ``PYTHONPATH`` (``python -S``: no .pth files, so only the
archive provides ``ecs_init``), and the Python 3.9 ones skip, saying why.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import zipfile
from typing import Any

import pytest
from helpers import metadata, wait_metadata, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import unit_file as uf  # noqa: E402

pytestmark = [pytest.mark.slow]

PKG = os.path.join(ROOT, "packaging")
SRC = os.path.join(ROOT, "src", "ecs_init")
PROGRAM = "/usr/libexec/amazon-ecs-init"
PLUGIN = "/usr/libexec/amazon-ecs-volume-plugin"
HAS_PLUGIN = os.path.exists(os.path.join(SRC, "volume_plugin", "server.py"))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _version_of_source() -> tuple[str, str]:
    scope: dict[str, Any] = {}
    exec(compile(_read(os.path.join(SRC, "__init__.py")), "__init__.py", "exec"), scope)
    return str(scope["__version__"]), str(scope["AGENT_VERSION"])


VERSION, AGENT_VERSION = _version_of_source()
AGENT_TAR = f"/var/cache/ecs/ecs-agent-{AGENT_VERSION}.tar"
VERSIONED_PROGRAM = f"{PROGRAM}-{VERSION}"


def sh(*argv: str, **kw: Any) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stdout[-1000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def _need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing build tools: {' '.join(missing)} (apt-get install rpm dpkg-dev debhelper fakeroot)")


def sdk_imports() -> list[str]:
    """Modules of ecs_init that import the Docker SDK (none once the Engine client has landed)."""
    found = []
    for path in glob.glob(os.path.join(SRC, "**", "*.py"), recursive=True):
        tree = ast.parse(_read(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "docker" or n.startswith("docker.") for n in names):
                found.append(os.path.relpath(path, ROOT))
                break
    return sorted(found)


SDK_IMPORTS = sdk_imports()
NEEDS_SDK = (
    f"the program still imports the Docker SDK ({', '.join(SDK_IMPORTS)}): the zipapp, which bundles only this"
    " program, cannot talk to Docker until the Engine client work is merged"
)


def program_command(program: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment to run an installed zipapp the way its shebang does.

    While the program still needs the Docker SDK, the test venv's
    site-packages provide it (``-S``: no site, no .pth files, so ``ecs_init``
    comes only from the archive).
    """
    if not SDK_IMPORTS:
        return [program, *args], {}
    import docker  # noqa: PLC0415 - only to locate the test venv's site-packages

    site = os.path.dirname(os.path.dirname(docker.__file__))
    return [sys.executable, "-S", program, *args], {"PYTHONPATH": site}


def find_python39() -> str | None:
    """Python 3.9 (the oldest supported) from $ECS_INIT_PYTHON39, PATH or pyenv (scripts/setup.sh)."""
    candidates = [os.environ.get("ECS_INIT_PYTHON39", ""), shutil.which("python3.9") or ""]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv, "versions", "3.9*", "bin", "python3.9")), reverse=True)
    candidates += ["/usr/bin/python3.9", "/usr/local/bin/python3.9"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            out = subprocess.run(
                [path, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
            )
            if out.returncode == 0 and out.stdout.strip() == "(3, 9)":
                return path
    return None


# ------------------------------------------------------------------ builds


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("vendor") / "deps")
    sh(sys.executable, os.path.join(PKG, "build-zipapp.py"), "/dev/null", "--deps-only", "--deps-cache", path)
    return path


@pytest.fixture(scope="module")
def agent_tarball(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The stand-in agent, built into this module's own directory (never into a release build)."""
    from conftest import standin_build

    path = str(tmp_path_factory.mktemp("agent") / "ecs-agent-v1.105.1.tar")
    standin_build.build("v1", path)
    return path


def _make(target: str, out: str, vendor: str, agent: str = "", *extra: str) -> str:
    """`make rpm|deb OUT=out [AGENT_TARBALL=agent]`; the package it wrote."""
    env = dict(os.environ, ECS_DEPS_DIR=vendor)
    if extra:  # rpmbuild options (flavours) go to the script directly
        env["AGENT_TARBALL"] = agent
        sh(os.path.join(PKG, f"build-{target}.sh"), out, *extra, env=env)
    else:
        sh("make", "-C", ROOT, "--no-print-directory", target, f"OUT={out}", f"AGENT_TARBALL={agent}", env=env)
    (found,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith((".rpm", ".deb"))]
    return found


@pytest.fixture(scope="module")
def rpm(tmp_path_factory: pytest.TempPathFactory, vendor: str) -> str:
    _need("rpmbuild", "rpm", "make")
    return _make("rpm", str(tmp_path_factory.mktemp("rpm")), vendor)


@pytest.fixture(scope="module")
def rpm_agent(tmp_path_factory: pytest.TempPathFactory, vendor: str, agent_tarball: str) -> str:
    _need("rpmbuild", "rpm", "make")
    return _make("rpm", str(tmp_path_factory.mktemp("rpm-agent")), vendor, agent_tarball)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory, vendor: str) -> str:
    _need("dpkg-buildpackage", "dh", "fakeroot", "make")
    return _make("deb", str(tmp_path_factory.mktemp("deb")), vendor)


@pytest.fixture(scope="module")
def deb_agent(tmp_path_factory: pytest.TempPathFactory, vendor: str, agent_tarball: str) -> str:
    _need("dpkg-buildpackage", "dh", "fakeroot", "make")
    return _make("deb", str(tmp_path_factory.mktemp("deb-agent")), vendor, agent_tarball)


def expected_files(unitdir: str, bundled: bool) -> set[str]:
    files = {
        "/etc/ecs",
        "/etc/ecs/ecs.config",
        "/etc/ecs/ecs.config.json",
        PROGRAM,
        VERSIONED_PROGRAM,
        "/usr/bin/amazon-ecs-init",
        "/usr/share/amazon-ecs-init",
        "/usr/share/amazon-ecs-init/ecs-notify.service",
        "/usr/share/amazon-ecs-init/schemas",
        f"{unitdir}/ecs.service",
        "/var/cache/ecs",
        "/var/cache/ecs/state",
        "/var/lib/ecs",
        "/var/lib/ecs/data",
        "/var/log/ecs",
    }
    files |= {f"/usr/share/amazon-ecs-init/schemas/{n}" for n in os.listdir(os.path.join(SRC, "schemas"))}
    if bundled:
        files |= {AGENT_TAR, "/var/cache/ecs/ecs-agent.tar"}
    if HAS_PLUGIN:
        files |= {PLUGIN, f"{PLUGIN}-{VERSION}"}
    for name in ("amazon-ecs-volume-plugin.service", "amazon-ecs-volume-plugin.socket"):
        if os.path.exists(os.path.join(PKG, "systemd", name)):
            files.add(f"{unitdir}/{name}")
    return files


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rpm_tree(path: str, into: pathlib.Path) -> pathlib.Path:
    _need("rpm2archive")
    into.mkdir()
    sh("sh", "-c", f"rpm2archive - < '{path}' | tar -xzf -", cwd=str(into))
    return into


# ---------------------------------------------------------------------- RPM


def _rpm_modes(path: str) -> dict[str, tuple[str, str]]:
    """{path: (mode string, symlink target)} from `rpm -qlvp`."""
    out: dict[str, tuple[str, str]] = {}
    for line in sh("rpm", "-qlvp", path).splitlines():
        fields = line.split()
        name = fields[8]
        target = fields[10] if len(fields) > 10 and fields[9] == "->" else ""
        out[name] = (fields[0], target)
    return out


@pytest.mark.parametrize("bundled", [False, True], ids=["default", "agent-tarball"])
def test_rpm_file_list_and_modes(bundled: bool, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("rpm_agent" if bundled else "rpm")
    files = set(sh("rpm", "-qlp", path).split())
    man = {f for f in files if f.startswith("/usr/share/man/man1/amazon-ecs-init.1")}
    assert len(man) == 1
    assert files - man == expected_files("/usr/lib/systemd/system", bundled)
    modes = _rpm_modes(path)
    # each version under its own name; the stable paths are symlinks to it
    assert modes[VERSIONED_PROGRAM][0] == "-rwxr-xr-x"
    assert modes[PROGRAM] == ("lrwxrwxrwx", f"amazon-ecs-init-{VERSION}")
    if HAS_PLUGIN:
        assert modes[PLUGIN] == ("lrwxrwxrwx", f"amazon-ecs-volume-plugin-{VERSION}")
    assert modes["/usr/bin/amazon-ecs-init"] == ("lrwxrwxrwx", "../libexec/amazon-ecs-init")
    assert modes["/var/cache/ecs"][0] == "drwx------"
    assert modes["/var/lib/ecs/data"][0] == "drwx------"
    assert modes["/var/log/ecs"][0] == "drwxr-xr-x"
    assert modes["/etc/ecs/ecs.config"][0] == "-rw-------"
    assert modes["/etc/ecs/ecs.config.json"][0] == "-rw-------"
    assert modes["/usr/lib/systemd/system/ecs.service"][0] == "-rw-r--r--"
    if bundled:
        assert modes["/var/cache/ecs/ecs-agent.tar"] == ("lrwxrwxrwx", f"ecs-agent-{AGENT_VERSION}.tar")


def test_rpm_default_build_bundles_no_agent(rpm: str, tmp_path: pathlib.Path) -> None:
    files = sh("rpm", "-qlp", rpm).split()
    assert not [f for f in files if f.endswith(".tar")]
    tree = _rpm_tree(rpm, tmp_path / "tree")
    assert (tree / "var/cache/ecs/state").read_text().strip() == "0"  # pre-start downloads the agent
    assert "echo 0 > /var/cache/ecs/state" in sh("rpm", "-qp", "--scripts", rpm)


def test_rpm_agent_tarball_build_bundles_exactly_that_tarball(
    rpm_agent: str, agent_tarball: str, tmp_path: pathlib.Path
) -> None:
    tars = [f for f in sh("rpm", "-qlp", rpm_agent).split() if f.endswith(".tar")]
    assert sorted(tars) == sorted(["/var/cache/ecs/ecs-agent.tar", AGENT_TAR])
    tree = _rpm_tree(rpm_agent, tmp_path / "tree")
    assert _sha256(str(tree) + AGENT_TAR) == _sha256(agent_tarball)
    assert (tree / "var/cache/ecs/state").read_text().strip() == "2"
    assert "echo 2 > /var/cache/ecs/state" in sh("rpm", "-qp", "--scripts", rpm_agent)


def test_rpm_config_flags(rpm: str) -> None:
    assert set(sh("rpm", "-qpc", rpm).split()) == {"/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json"}
    flags = dict(
        line.split(" ", 1)
        for line in sh("rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm).splitlines()
    )
    # ghost (created by %post, owned by the package) + config(noreplace): upgrades never overwrite
    for conf in ("/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json"):
        assert set(flags[conf]) >= {"c", "n", "g"}, flags[conf]
    man = [f for f in flags if f.startswith("/usr/share/man/")]
    assert "d" in flags[man[0]]
    assert "c" not in flags["/var/cache/ecs/state"]


def test_rpm_metadata_obsoletes_provides_requires(rpm: str) -> None:
    evr = f"{VERSION}-1"
    assert sh("rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE} %{ARCH}", rpm) == f"{evr} x86_64"
    assert sh("rpm", "-qp", "--obsoletes", rpm).split("\n")[:-1] == [f"ecs-init < {evr}"]
    provides = sh("rpm", "-qp", "--provides", rpm).splitlines()
    assert f"ecs-init = {evr}" in provides and f"amazon-ecs-init = {evr}" in provides
    requires = sh("rpm", "-qpR", rpm).splitlines()
    assert "(docker >= 20.10 or docker-ce >= 20.10 or moby-engine >= 20.10)" in requires
    for dep in ("iptables", "procps-ng", "iproute", "systemd", "python3 >= 3.9"):
        assert dep in requires, requires


def _rpmvercmp(a: str, b: str) -> int:
    return int(sh("rpm", "--eval", f'%{{lua: print(rpm.vercmp("{a}", "{b}"))}}').strip())


def test_versions_sort_above_the_go_package_of_the_same_agent_version() -> None:
    """rpm, dpkg and PEP 440 all order <agent>.postN between the Go agent release and the next one."""
    _need("rpm", "dpkg")
    base = AGENT_VERSION.lstrip("v")
    major, minor, patch = (int(x) for x in base.split("."))
    ours_rpm = f"{VERSION}-1"
    for go in (f"{base}-1", f"{base}-9", f"{base}-1.amzn2023", f"{base}-4.amzn2"):
        assert _rpmvercmp(ours_rpm, go) == 1, go
        assert _rpmvercmp(f"{ours_rpm}.amzn2023", go) == 1, go
    assert _rpmvercmp(ours_rpm, f"{major}.{minor}.{patch + 1}-1") == -1
    assert _rpmvercmp(ours_rpm, f"{major}.{minor + 1}.0-1.amzn2023") == -1
    ours_deb = f"{VERSION}-1"
    for go in (f"{base}-1", f"{base}-9"):
        assert subprocess.run(["dpkg", "--compare-versions", ours_deb, "gt", go]).returncode == 0, go
    assert (
        subprocess.run(["dpkg", "--compare-versions", ours_deb, "lt", f"{major}.{minor}.{patch + 1}-1"]).returncode == 0
    )


def _fake_tools(tmp_path: pathlib.Path) -> tuple[str, str]:
    """A PATH directory whose systemctl/deb-systemd-* only record their calls."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    record = tmp_path / "calls.txt"
    for tool in ("systemctl", "deb-systemd-helper", "deb-systemd-invoke", "restart", "stop"):
        script = bindir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {record}\nexit 0\n')
        script.chmod(0o755)
    return str(bindir), str(record)


ROOTED = re.compile(r"(?<![\w./-])/(etc|var|usr|lib|run|sbin)/")


def _run_scriptlet(text: str, root: str, tmp_path: pathlib.Path, *args: str) -> list[str]:
    """Run a package scriptlet with its absolute paths moved under ``root``; the tool calls it made."""
    bindir, record = _fake_tools(tmp_path)
    text = ROOTED.sub(lambda m: f"{root}/{m.group(1)}/", text)
    text = text.replace(f"{root}/sbin/", f"{bindir}/")  # upstart's /sbin/stop, /sbin/restart
    env = dict(os.environ, PATH=bindir + ":/usr/bin:/bin")
    if os.path.exists(record):
        os.unlink(record)
    proc = subprocess.run(["sh", "-e", "-c", text, "scriptlet", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return _read(record).splitlines() if os.path.exists(record) else []


def _rpm_script(rpm: str, tag: str) -> str:
    return sh("rpm", "-qp", "--qf", f"%{{{tag}}}", rpm)


def _new_root(tmp_path: pathlib.Path, name: str = "root") -> str:
    root = str(tmp_path / name)
    for d in ("etc/ecs", "var/cache/ecs", "usr/lib/systemd/system", "run/systemd/system", "var/lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return root


def _lay_units(root: str) -> None:
    for unit in ("ecs.service", "amazon-ecs-volume-plugin.socket", "amazon-ecs-volume-plugin.service"):
        pathlib.Path(root, "usr/lib/systemd/system", unit).write_text("[Unit]\n")


def test_rpm_post_creates_ghosts_and_resets_state(rpm_agent: str, tmp_path: pathlib.Path) -> None:
    root = _new_root(tmp_path)
    post = _rpm_script(rpm_agent, "POSTIN")
    _run_scriptlet(post, root, tmp_path, "1")
    for conf in ("ecs.config", "ecs.config.json"):
        path = f"{root}/etc/ecs/{conf}"
        assert os.path.getsize(path) == 0
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert _read(root + "/var/cache/ecs/state").strip() == "2"
    # the operator configured the host and the agent loaded the image (state 1)
    pathlib.Path(root, "etc/ecs/ecs.config").write_text("ECS_CLUSTER=mine\n")
    pathlib.Path(root, "etc/ecs/ecs.config.json").write_text('{"Cluster": "mine"}\n')
    pathlib.Path(root, "var/cache/ecs/state").write_text("1\n")
    _run_scriptlet(post, root, tmp_path, "2")
    assert _read(root + "/etc/ecs/ecs.config") == "ECS_CLUSTER=mine\n"
    assert _read(root + "/etc/ecs/ecs.config.json") == '{"Cluster": "mine"}\n'
    assert _read(root + "/var/cache/ecs/state").strip() == "2"  # the upgraded package's tarball replaces Docker's image


@pytest.mark.parametrize(
    ("before", "count", "presets"),
    [
        ("nothing", "1", ["ecs.service", "amazon-ecs-volume-plugin.socket"]),  # a new host
        ("go-unit", "1", []),  # replacing the Go package (ecs-init): its unit was there
        ("own-unit", "2", []),  # upgrading this package
        ("admin-unit", "1", ["amazon-ecs-volume-plugin.socket"]),  # the admin's own ecs.service in /etc
    ],
)
def test_rpm_presets_only_units_new_on_the_host(
    rpm: str, tmp_path: pathlib.Path, before: str, count: str, presets: list[str]
) -> None:
    """%post never re-presets a unit that existed: its enabled/disabled state is the admin's (or Go's)."""
    root = _new_root(tmp_path)
    if before in ("go-unit", "own-unit"):
        _lay_units(root)
    if before == "admin-unit":
        os.makedirs(root + "/etc/systemd/system")
        pathlib.Path(root, "etc/systemd/system/ecs.service").write_text("[Unit]\n")
    calls = _run_scriptlet(_rpm_script(rpm, "PREIN"), root, tmp_path, count)
    assert not [c for c in calls if "preset" in c or "enable" in c]
    _lay_units(root)  # rpm installs the package's files
    calls = _run_scriptlet(_rpm_script(rpm, "POSTIN"), root, tmp_path, count)
    assert [c.split()[-1] for c in calls if " preset " in c] == presets
    assert not [c for c in calls if "enable" in c or "start" in c]
    assert not os.path.exists(root + "/var/lib/rpm-state/amazon-ecs-init")  # the markers are cleaned up


def test_rpm_upgrade_keeps_ecs_running_and_restarts_the_volume_plugin(rpm: str, tmp_path: pathlib.Path) -> None:
    root = _new_root(tmp_path)
    postun = _rpm_script(rpm, "POSTUN")
    upgrade = _run_scriptlet(postun, root, tmp_path, "1")
    assert "systemctl try-restart amazon-ecs-volume-plugin.service" in upgrade
    assert not [c for c in upgrade if "ecs.service" in c]  # ecs is left running
    erase = _run_scriptlet(postun, root, tmp_path, "0")
    assert not [c for c in erase if "restart" in c]
    assert not [c for c in _run_scriptlet(_rpm_script(rpm, "PREUN"), root, tmp_path, "1") if "ecs" in c]
    calls = _run_scriptlet(_rpm_script(rpm, "PREUN"), root, tmp_path, "0")
    assert "systemctl --no-reload disable --now ecs.service" in calls


@pytest.mark.parametrize(
    ("flavour", "args"),
    [("amzn", ("--define", "amzn 2023")), ("upstart", ("--with", "upstart"))],
)
def test_rpm_flavours(flavour: str, args: tuple[str, ...], vendor: str, tmp_path: pathlib.Path) -> None:
    _need("rpmbuild", "rpm2archive")
    path = _make("rpm", str(tmp_path / "out"), vendor, "", *args)
    files = set(sh("rpm", "-qlp", path).split())
    tree = _rpm_tree(path, tmp_path / "tree")
    if flavour == "amzn":
        assert re.search(rf"-{re.escape(VERSION)}-1\.x86_64\.rpm$", path)
        unit = uf.parse_unit(str(tree / "usr/lib/systemd/system/ecs.service"))
        assert unit.words("Unit", "After") == ["docker.service", "cloud-final.service"]
        assert unit.values("Unit", "Wants") == ["docker.service"]
    else:
        assert "/etc/init/ecs.conf" in files
        assert not any(f.endswith(".service") for f in files)
        assert "/etc/init/ecs.conf" in sh("rpm", "-qpc", path).split()
        assert "start on stopped rc RUNLEVEL=[345]" in (tree / "etc/init/ecs.conf").read_text()
        scripts = [ln for ln in sh("rpm", "-qp", "--scripts", path).splitlines() if not ln.lstrip().startswith("#")]
        assert any("/sbin/stop ecs" in ln for ln in scripts)
        assert not [ln for ln in scripts if "systemctl" in ln]
        requires = sh("rpm", "-qpR", path).splitlines()
        assert "docker >= 20.10" in requires and "upstart" in requires
        # upgrade: the plugin job restarts, ecs keeps running
        calls = _run_scriptlet(_rpm_script(path, "POSTUN"), _new_root(tmp_path), tmp_path, "1")
        assert [c.split()[:2] for c in calls] == [["restart", "amazon-ecs-volume-plugin"]]


# ----------------------------------------------------------- AGENT_TARBALL


@pytest.fixture(scope="module")
def bad_tarballs(tmp_path_factory: pytest.TempPathFactory, agent_tarball: str) -> dict[str, str]:
    out = tmp_path_factory.mktemp("bad")
    made: dict[str, str] = {}
    made["missing"] = str(out / "nope.tar")
    made["not a tar"] = str(out / "junk.tar")
    pathlib.Path(made["not a tar"]).write_bytes(b"\x00junk" * 100)
    made["empty"] = str(out / "empty.tar")
    pathlib.Path(made["empty"]).write_bytes(b"")
    made["plain tar"] = str(out / "plain.tar")
    with tarfile.open(made["plain tar"], "w") as tar:
        tar.add(__file__, arcname="x.py")
    made["truncated"] = str(out / "truncated.tar")
    with open(agent_tarball, "rb") as fh:
        pathlib.Path(made["truncated"]).write_bytes(fh.read()[: os.path.getsize(agent_tarball) // 2])
    from conftest import standin_build

    made["other image"] = str(out / "other.tar")
    standin_build.build("v1", made["other image"], tag="busybox:latest")
    return made


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist"),
        ("not a tar", "is not an uncompressed tar archive"),
        ("empty", "is empty"),
        ("plain tar", "not a docker save archive"),
        ("truncated", "truncated"),
        ("other image", "does not tag amazon/amazon-ecs-agent:latest (its tags: busybox:latest)"),
    ],
)
def test_agent_tarball_checker_refuses(bad_tarballs: dict[str, str], kind: str, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(PKG, "check-agent-tarball.py"), bad_tarballs[kind]],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_agent_tarball_checker_accepts_and_checks_the_architecture(agent_tarball: str) -> None:
    check = [sys.executable, os.path.join(PKG, "check-agent-tarball.py"), agent_tarball]
    machine = "amd64" if os.uname().machine in ("x86_64", "amd64") else "arm64"
    assert sh(*check).strip() == machine
    assert sh(*check, "--arch", "x86_64" if machine == "amd64" else "aarch64").strip() == machine
    wrong = subprocess.run(
        [*check, "--arch", "arm64" if machine == "amd64" else "amd64"], capture_output=True, text=True
    )
    assert wrong.returncode == 1 and f"holds a {machine} agent image" in wrong.stderr


@pytest.mark.parametrize("target", ["rpm", "deb"])
def test_make_refuses_a_bad_agent_tarball_before_building(
    target: str, bad_tarballs: dict[str, str], tmp_path: pathlib.Path
) -> None:
    _need("make", "rpmbuild" if target == "rpm" else "dpkg-buildpackage")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            "make",
            "-C",
            ROOT,
            "--no-print-directory",
            target,
            f"OUT={out}",
            f"AGENT_TARBALL={bad_tarballs['other image']}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "does not tag amazon/amazon-ecs-agent:latest" in proc.stderr
    assert f"build-{target}: AGENT_TARBALL is not usable" in proc.stderr
    assert not out.exists() or not os.listdir(out)


# ------------------------------------------------------------------- Debian


def _deb_entries(path: str) -> dict[str, tuple[str, str]]:
    entries: dict[str, tuple[str, str]] = {}
    for line in sh("dpkg-deb", "-c", path).splitlines():
        fields = line.split()
        name = fields[5].lstrip(".").rstrip("/") or "/"
        entries[name] = (fields[0], fields[7] if len(fields) > 7 and fields[6] == "->" else "")
    return entries


OURS = ("/etc/ecs", "/usr/libexec/", "/usr/bin/", "/usr/share/amazon-ecs-init", "/var/", "/lib/systemd/system/")


@pytest.mark.parametrize("bundled", [False, True], ids=["default", "agent-tarball"])
def test_deb_contents_and_modes(bundled: bool, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("deb_agent" if bundled else "deb")
    entries = _deb_entries(path)
    ours = {n for n in entries if n.startswith(OURS) and n not in ("/var/cache", "/var/lib", "/var/log")}
    # ghost config files are created by postinst, not shipped
    want = expected_files("/lib/systemd/system", bundled) - {"/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json"}
    assert ours == want
    assert "/usr/share/man/man1/amazon-ecs-init.1.gz" in entries
    assert entries[VERSIONED_PROGRAM][0] == "-rwxr-xr-x"
    assert entries[PROGRAM] == ("lrwxrwxrwx", f"amazon-ecs-init-{VERSION}")
    assert entries["/usr/bin/amazon-ecs-init"] == ("lrwxrwxrwx", "../libexec/amazon-ecs-init")
    assert entries["/var/cache/ecs"][0] == "drwx------"
    assert entries["/var/lib/ecs/data"][0] == "drwx------"
    if bundled:
        assert entries["/var/cache/ecs/ecs-agent.tar"] == ("lrwxrwxrwx", f"ecs-agent-{AGENT_VERSION}.tar")
    else:
        assert not [n for n in entries if n.endswith(".tar")]


def test_deb_agent_tarball_build_bundles_exactly_that_tarball(
    deb_agent: str, agent_tarball: str, deb: str, tmp_path: pathlib.Path
) -> None:
    tree = tmp_path / "tree"
    sh("dpkg-deb", "-x", deb_agent, str(tree))
    assert _sha256(str(tree) + AGENT_TAR) == _sha256(agent_tarball)
    assert (tree / "var/cache/ecs/state").read_text().strip() == "2"
    assert "echo 2 > /var/cache/ecs/state" in sh("dpkg-deb", "-I", deb_agent, "postinst")
    plain = tmp_path / "plain"
    sh("dpkg-deb", "-x", deb, str(plain))
    assert (plain / "var/cache/ecs/state").read_text().strip() == "0"
    assert "echo 0 > /var/cache/ecs/state" in sh("dpkg-deb", "-I", deb, "postinst")


def test_deb_control(deb: str) -> None:
    field = lambda name: sh("dpkg-deb", "-f", deb, name).strip()  # noqa: E731
    assert field("Package") == "amazon-ecs-init"
    assert field("Version") == f"{VERSION}-1"
    assert field("Architecture") == "amd64"
    depends = [d.strip() for d in field("Depends").split(",")]
    assert depends == [
        "docker.io (>= 20.10) | docker-ce (>= 5:20.10)",
        "iptables",
        "procps",
        "iproute2",
        "systemd",
        "python3 (>= 3.9)",
    ]
    info = sh("dpkg-deb", "-I", deb)
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(rf"\b{script}\b", info), script
    assert "preinst" not in info  # nothing stops ecs before an upgrade
    # no conffile would let dpkg prompt over (or replace) the operator's config
    assert "conffiles" not in info or "/etc/ecs/ecs.config" not in sh("dpkg-deb", "-I", deb, "conffiles")


# ---------------------------------------------------- the real dpkg, in a root

# deb-systemd-helper, modelled on its documented state rules: `enable` links the
# unit into its WantedBy target once and records it; `was-enabled` is true when
# every recorded link exists, or nothing is recorded yet; `update-state`
# records without linking; `purge` removes the links and forgets. Every call
# is logged to /calls.
FAKE_DSH = r"""#!/bin/sh
echo "deb-systemd-helper $*" >> /calls
[ "$1" = --quiet ] && shift
action=$1; unit=$2
state=/var/lib/systemd/deb-systemd-helper-enabled/$unit.dsh-also
target=$(sed -n 's/^WantedBy=//p' /lib/systemd/system/$unit 2>/dev/null | head -n 1)
link=/etc/systemd/system/$target.wants/$unit
case $action in
was-enabled)
    [ -f "$state" ] || exit 0
    while read -r l; do [ -L "$l" ] || exit 1; done < "$state"; exit 0 ;;
debian-installed) [ -f "$state" ]; exit $? ;;
enable)
    mkdir -p /var/lib/systemd/deb-systemd-helper-enabled "$(dirname "$link")"
    if [ ! -f "$state.enabled-once" ]; then ln -sf /lib/systemd/system/$unit "$link"; : > "$state.enabled-once"; fi
    echo "$link" > "$state" ;;
update-state) mkdir -p /var/lib/systemd/deb-systemd-helper-enabled; echo "$link" > "$state" ;;
purge)
    shift
    for u in "$@"; do
        s=/var/lib/systemd/deb-systemd-helper-enabled/$u.dsh-also
        if [ -f "$s" ]; then while read -r l; do rm -f "$l"; rmdir -p "$(dirname "$l")" 2>/dev/null; done < "$s"; fi
        rm -f "$s" "$s.enabled-once"
    done
    rmdir -p /var/lib/systemd/deb-systemd-helper-enabled 2>/dev/null ;;
esac
exit 0
"""
RECORDER = '#!/bin/sh\necho "{name} $*" >> /calls\nexit 0\n'
APPLETS = (
    "sh", "rm", "rmdir", "mkdir", "touch", "cat", "echo", "chmod", "ln", "mv", "test", "[", "ls", "sed",
    "head", "dirname", "true", "false", "printf", "grep",
)  # fmt: skip


class DpkgRoot:
    """A throwaway root for the real dpkg: busybox for the maintainer scripts, recording service tools."""

    def __init__(self, path: pathlib.Path):
        self.root = str(path)
        busybox = shutil.which("busybox") or "/bin/busybox"
        for d in ("bin", "usr/bin", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "tmp",
                  "dev", "run/systemd/system", "var/run", "mnt", "etc/apparmor.d"):  # fmt: skip
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        for f in ("var/lib/dpkg/status", "var/lib/dpkg/available", "calls"):
            pathlib.Path(self.root, f).touch()
        shutil.copy(busybox, os.path.join(self.root, "bin/busybox"))
        for applet in APPLETS:
            os.symlink("busybox", os.path.join(self.root, "bin", applet))
        os.mknod(os.path.join(self.root, "dev/null"), 0o666 | 0o020000, os.makedev(1, 3))
        self._tool("deb-systemd-helper", FAKE_DSH)
        for name in ("deb-systemd-invoke", "systemctl"):
            self._tool(name, RECORDER.format(name=name))

    def _tool(self, name: str, text: str) -> None:
        path = pathlib.Path(self.root, "usr/bin", name)
        path.write_text(text)
        path.chmod(0o755)

    def dpkg(self, *args: str) -> str:
        """Run dpkg on this root; its output (warnings included). Clears the call log first."""
        pathlib.Path(self.root, "calls").write_text("")
        env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        proc = subprocess.run(
            ["dpkg", f"--root={self.root}", "--force-depends", *args], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def calls(self) -> list[str]:
        return _read(os.path.join(self.root, "calls")).splitlines()

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel.lstrip("/"))

    def write(self, rel: str, text: str = "x\n") -> None:
        os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
        pathlib.Path(self.path(rel)).write_text(text)

    def enabled(self, unit: str, target: str = "multi-user.target") -> bool:
        return os.path.islink(self.path(f"/etc/systemd/system/{target}.wants/{unit}"))


@pytest.fixture
def dpkg_root(tmp_path: pathlib.Path) -> DpkgRoot:
    _need("dpkg", "busybox")
    if os.geteuid() != 0:
        pytest.skip("dpkg --root runs the maintainer scripts chrooted: needs root")
    return DpkgRoot(tmp_path / "root")


def _go_deb(tmp_path: pathlib.Path, version: str = "1.105.1-1") -> str:
    """A stand-in for the Go amazon-ecs-init .deb: the same name and unit, scripts that enable nothing."""
    tree = tmp_path / "go"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: amazon-ecs-init\nVersion: {version}\nArchitecture: amd64\nMaintainer: x <x@example.invalid>\n"
        "Description: the Go ecs-init (test stand-in)\n"
    )
    for rel in ("lib/systemd/system", "usr/libexec", "var/cache/ecs", "var/lib/ecs/data", "etc/ecs"):
        (tree / rel).mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(PKG, "systemd/ecs.service"), tree / "lib/systemd/system/ecs.service")
    (tree / "usr/libexec/amazon-ecs-init").write_text("#!/bin/sh\n")
    (tree / "var/cache/ecs/state").write_text("2\n")
    out = str(tmp_path / "go.deb")
    sh("dpkg-deb", "--root-owner-group", "-b", str(tree), out)
    return out


def test_dpkg_first_install_enables_ecs_but_starts_nothing_of_it(deb_agent: str, dpkg_root: DpkgRoot) -> None:
    out = dpkg_root.dpkg("-i", deb_agent)
    assert "warning" not in out.lower().replace("dependency problems", ""), out
    calls = dpkg_root.calls()
    assert dpkg_root.enabled("ecs.service")  # Debian's rule for services: enabled on first install
    assert dpkg_root.enabled("amazon-ecs-volume-plugin.socket", "sockets.target")
    assert not dpkg_root.enabled("amazon-ecs-volume-plugin.service")  # socket-activated
    invokes = [c for c in calls if c.startswith("deb-systemd-invoke")]
    assert invokes == ["deb-systemd-invoke start amazon-ecs-volume-plugin.socket"], calls
    for conf in ("/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json"):
        assert os.path.getsize(dpkg_root.path(conf)) == 0
        assert os.stat(dpkg_root.path(conf)).st_mode & 0o777 == 0o600
    assert _read(dpkg_root.path("/var/cache/ecs/state")).strip() == "2"
    assert os.readlink(dpkg_root.path(PROGRAM)) == f"amazon-ecs-init-{VERSION}"


def test_dpkg_upgrade_keeps_the_admins_choice_and_ecs_running(deb_agent: str, dpkg_root: DpkgRoot) -> None:
    dpkg_root.dpkg("-i", deb_agent)
    os.unlink(dpkg_root.path("/etc/systemd/system/multi-user.target.wants/ecs.service"))  # systemctl disable ecs
    dpkg_root.write("/etc/ecs/ecs.config", "ECS_CLUSTER=mine\n")
    dpkg_root.write("/var/cache/ecs/state", "1\n")
    dpkg_root.dpkg("-i", deb_agent)  # an upgrade (same version: dpkg runs the upgrade path)
    calls = dpkg_root.calls()
    assert not dpkg_root.enabled("ecs.service"), calls
    assert not [c for c in calls if "invoke" in c and "ecs.service" in c], calls  # never stopped nor restarted
    assert "deb-systemd-invoke try-restart amazon-ecs-volume-plugin.service" in calls
    assert _read(dpkg_root.path("/etc/ecs/ecs.config")) == "ECS_CLUSTER=mine\n"
    assert _read(dpkg_root.path("/var/cache/ecs/state")).strip() == "2"


@pytest.mark.parametrize("admin_enabled", [False, True])
def test_dpkg_upgrade_from_the_go_package_keeps_its_enablement(
    deb: str, dpkg_root: DpkgRoot, tmp_path: pathlib.Path, admin_enabled: bool
) -> None:
    """The Go .deb never enables ecs.service: what the admin did under it stays."""
    dpkg_root.dpkg("-i", _go_deb(tmp_path))
    if admin_enabled:
        os.makedirs(dpkg_root.path("/etc/systemd/system/multi-user.target.wants"))
        os.symlink(
            "/lib/systemd/system/ecs.service", dpkg_root.path("/etc/systemd/system/multi-user.target.wants/ecs.service")
        )
    out = dpkg_root.dpkg("-i", deb)
    assert "over (1.105.1-1)" in out, out  # dpkg takes ours as an upgrade of the Go package
    assert dpkg_root.enabled("ecs.service") is admin_enabled
    assert os.readlink(dpkg_root.path(PROGRAM)) == f"amazon-ecs-init-{VERSION}"
    assert _read(dpkg_root.path("/var/cache/ecs/state")).strip() == "0"  # nothing bundled: download


def _program_created(r: DpkgRoot) -> None:
    """What running the program (and the agent, and the volume plugin) leaves on a host."""
    r.write("/etc/ecs/ecs.config", "ECS_CLUSTER=mine\n")  # the admin's edit
    for rel in ("/var/log/ecs/ecs-init.log", "/var/log/ecs/ecs-init.log.2026-11-30-12", "/var/log/ecs/ecs-agent.log",
                "/var/log/ecs/ecs-volume-plugin.log", "/var/lib/ecs/ecs-init-events.json",
                "/var/lib/ecs/.ecs-init-events.json.abc123.tmp", "/var/lib/ecs/data/agent.db",
                "/var/lib/ecs/data/ecs_volume_plugin.json", "/var/lib/ecs/gpu/nvidia-gpu-info.json",
                "/var/run/ecs-init/ecs-init.lock", "/var/run/ecs-init/supervisor.json", "/var/cache/ecs/desired-image",
                "/var/cache/ecs/ecs-agent-v1.106.0.tar", "/etc/apparmor.d/ecs-agent-default"):  # fmt: skip
        r.write(rel)
    for rel in ("/mnt/ecs/ebs", "/var/lib/ecs/volumes/efs-1"):
        os.makedirs(r.path(rel))


def test_dpkg_remove_keeps_configuration_and_data_purge_removes_everything(deb_agent: str, dpkg_root: DpkgRoot) -> None:
    before = set(_tree(dpkg_root.root))
    dpkg_root.dpkg("-i", deb_agent)
    _program_created(dpkg_root)
    out = dpkg_root.dpkg("-r", "amazon-ecs-init")
    assert _not_empty_warnings(out) == [], out
    assert "deb-systemd-invoke stop ecs.service" in dpkg_root.calls()  # post-stop cleans the host up
    for kept in ("/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json", "/var/lib/ecs/ecs-init-events.json",
                 "/var/log/ecs/ecs-init.log", "/var/lib/ecs/data/agent.db"):  # fmt: skip
        assert os.path.exists(dpkg_root.path(kept)), kept
    assert not os.path.exists(dpkg_root.path(PROGRAM))
    out = dpkg_root.dpkg("--purge", "amazon-ecs-init")
    assert _not_empty_warnings(out) == [], out  # dpkg found every directory of its own empty
    left = set(_tree(dpkg_root.root)) - before
    assert left == set(), sorted(left)
    assert [c for c in dpkg_root.calls() if c.startswith("deb-systemd-helper purge")]


def test_dpkg_purge_keeps_what_is_not_the_packages(deb: str, dpkg_root: DpkgRoot) -> None:
    dpkg_root.dpkg("-i", deb)
    _program_created(dpkg_root)
    dpkg_root.write("/var/lib/ecs/ecs.config", "ECS_CLUSTER=from-the-ami\n")  # the platform's
    dpkg_root.write("/etc/ecs/admin-notes.txt", "mine\n")  # the admin's own file
    dpkg_root.write("/var/lib/ecs/volumes/efs-2/file-on-a-mounted-volume")
    out = dpkg_root.dpkg("--purge", "amazon-ecs-init")
    assert _read(dpkg_root.path("/var/lib/ecs/ecs.config")) == "ECS_CLUSTER=from-the-ami\n"
    assert _read(dpkg_root.path("/etc/ecs/admin-notes.txt")) == "mine\n"
    assert os.path.exists(dpkg_root.path("/var/lib/ecs/volumes/efs-2/file-on-a-mounted-volume"))
    assert not os.path.exists(dpkg_root.path("/etc/ecs/ecs.config"))
    assert not os.path.exists(dpkg_root.path("/var/lib/ecs/ecs-init-events.json"))
    # dpkg says why it kept the two directories, and only those
    assert _not_empty_warnings(out) == ["/etc/ecs", "/var/lib/ecs"], out


# Directories every Debian system has (owned by base packages there; here, in a
# root holding only this package, dpkg counts them as this package's alone).
SHARED_DIRS = {"/etc", "/usr", "/usr/bin", "/usr/share", "/usr/share/doc", "/usr/share/man", "/usr/share/man/man1",
               "/usr/libexec", "/var", "/var/lib", "/var/log", "/var/cache", "/lib", "/lib/systemd",
               "/lib/systemd/system"}  # fmt: skip


def _not_empty_warnings(out: str) -> list[str]:
    """The package's own directories dpkg could not remove because something was left in them."""
    return sorted(d for d in re.findall(r"directory '([^']+)' not empty", out) if d not in SHARED_DIRS)


def _tree(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return [f for f in found if not f.startswith(("var/lib/dpkg", "calls"))]


# --------------------------------------------------------------- the zipapp


@pytest.fixture(scope="module")
def installed(deb_agent: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("installed") / "root")
    sh("dpkg-deb", "-x", deb_agent, root)
    return root


def test_zipapp_holds_only_this_program_and_the_nvml_binding(installed: str) -> None:
    program = installed + VERSIONED_PROGRAM
    with open(program, "rb") as fh:
        assert fh.readline() == b"#!/usr/bin/python3 -I\n"
        names = zipfile.ZipFile(io.BytesIO(fh.read())).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.startswith("nvidia_ml_py-")} == {
        "__main__.py", "__main__.pyc", "ecs_init", "pynvml.py", "pynvml.pyc",
    }  # fmt: skip
    assert [t for t in tops if t.endswith(".dist-info")], "nvidia-ml-py's metadata (its licence) is kept"
    assert "ecs_init/_build_info.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    sources = {n[len("ecs_init/") :] for n in names if n.startswith("ecs_init/") and n.endswith(".py")}
    tracked = {os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "**", "*.py"), recursive=True)} - {
        "_build_info.py"
    }
    assert sources - {"_build_info.py"} == tracked


def _git(*args: str) -> str:
    return sh("git", "-C", ROOT, *args)


def test_zipapp_version_records_the_git_revision(installed: str, tmp_path: pathlib.Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(ROOT, "src")}  # -I ignores PYTHONPATH
    proc = subprocess.run([installed + PROGRAM, "version"], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    head = _git("rev-parse", "--short=8", "HEAD").strip()
    dirty = "*" if _git("status", "--porcelain").strip() else ""
    assert first == f"ecs-init version {VERSION} ({dirty}{head})"
    assert second == f"ECS agent version {AGENT_VERSION}"
    again = subprocess.run([installed + PROGRAM, "--version"], env=env, capture_output=True, text=True)
    assert again.stdout == proc.stdout
    usage = subprocess.run([installed + PROGRAM], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert usage.returncode == 1 and "pre-start" in usage.stdout + usage.stderr


# A stand-in ecs_init for the archive-pinning test: its entry point imports a
# module only after the file it started from was replaced or removed.
LAZY_CLI = """
import os, sys, time
def run():  # the packaged entry point (DEFAULT_ENTRY)
    print("started", flush=True)
    while not os.path.exists(os.environ["GO_ON"]):
        time.sleep(0.02)
    from ecs_init import late
    print("late", late.VALUE, flush=True)
    return 0
"""


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_running_zipapp_survives_its_file_being_replaced(tmp_path: pathlib.Path, how: str) -> None:
    """zipimport reopens the archive by path: without the pin this is 'bad local file header'."""
    pythons = [sys.executable] + [p for p in [find_python39()] if p]
    built = {}
    for name, value in (("a", "A"), ("b", "B" * 300)):
        pkg = tmp_path / name / "ecs_init"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"# {name}\n" * (1 if name == "a" else 50))
        (pkg / "cli.py").write_text(LAZY_CLI)
        (pkg / "late.py").write_text(f"VALUE = {value!r}\n")
        shutil.copy(os.path.join(SRC, "versioninfo.py"), pkg)
        built[name] = str(tmp_path / f"{name}.pyz")
        sh(sys.executable, os.path.join(PKG, "build-zipapp.py"), built[name], "--source", str(pkg), "--no-nvml")
    for python in pythons:
        target = str(tmp_path / "installed")
        shutil.copy(built["a"], target)
        go_on = tmp_path / "go-on"
        go_on.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [python, "-I", target],
            env=dict(os.environ, GO_ON=str(go_on)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        if how == "replaced":  # rename a new version over it, as rpm and dpkg do
            shutil.copy(built["b"], target + ".new")
            os.rename(target + ".new", target)
        else:
            os.unlink(target)
        go_on.touch()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"{python}: {err}"
        assert out.strip() == "late A", python


# ------------------------------------------------- the oldest Python, for real


@pytest.fixture(scope="module")
def python39() -> str:
    found = find_python39()
    if not found:
        pytest.skip("no Python 3.9 here (scripts/setup.sh looks in PATH and pyenv; set ECS_INIT_PYTHON39)")
    return found


def test_zipapp_version_under_python39(installed: str, python39: str) -> None:
    proc = subprocess.run([python39, "-I", installed + PROGRAM, "version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ecs-init version {VERSION} (")


@pytest.mark.docker
def test_zipapp_check_and_render_json_under_python39(
    installed: str, python39: str, docker_lock: None, tmp_path: pathlib.Path
) -> None:
    if SDK_IMPORTS:
        pytest.skip(NEEDS_SDK)
    prefix = str(tmp_path / "prefix")
    os.makedirs(prefix + "/etc/ecs")
    pathlib.Path(prefix, "etc/ecs/ecs.config").write_text("ECS_CLUSTER=py39\n")
    env = dict(os.environ, ECS_INIT_PATH_PREFIX=prefix)
    for action in ("check", "render"):
        proc = subprocess.run(
            [python39, "-I", installed + PROGRAM, action, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 1), f"{action}: {proc.stderr}"  # check: 1 = some FAIL on this host
        doc = json.loads(proc.stdout)
        assert isinstance(doc, dict), action
        assert "Traceback" not in proc.stderr and "TypeError" not in proc.stderr, proc.stderr
    assert "ECS_CLUSTER=py39" in json.dumps(doc)


@pytest.mark.docker
def test_zipapp_start_and_stop_under_python39(
    installed: str, python39: str, agent_tarball: str, docker_lock: None, tmp_path: pathlib.Path
) -> None:
    if SDK_IMPORTS:
        pytest.skip(NEEDS_SDK)
    prefix = str(tmp_path / "prefix")
    shutil.copytree(installed + "/var", prefix + "/var", symlinks=True)
    os.makedirs(prefix + "/etc/ecs")
    env = dict(os.environ, ECS_INIT_PATH_PREFIX=prefix, ECS_LOGLEVEL="debug")
    run = [python39, "-I", installed + PROGRAM]
    loaded = subprocess.run([*run, "reload-cache"], env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    sup = subprocess.Popen([*run, "start"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        meta = wait_metadata(timeout=60)
        assert meta and AGENT_VERSION in json.dumps(meta)
        stop = subprocess.run([*run, "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert sup.wait(timeout=60) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    assert metadata() is None


# ---------------------------------------------- in-place upgrade, supervised


def _build_version(tmp_path: pathlib.Path, version: str, vendor: str) -> str:
    """This program as version ``version`` (a copy of the source with that __version__)."""
    src = tmp_path / f"src-{version}" / "ecs_init"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "_build_info.py"))
    init = src / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text()))
    out = str(tmp_path / f"amazon-ecs-init-{version}")
    sh(sys.executable, os.path.join(PKG, "build-zipapp.py"), out, "--source", str(src), "--deps-cache", vendor)
    return out


def _install_version(libexec: str, built: str, version: str) -> None:
    """What rpm/dpkg do: the new versioned file, the symlink renamed over, the old version's file removed."""
    olds = [f for f in os.listdir(libexec) if f.startswith("amazon-ecs-init-")]
    shutil.copy(built, os.path.join(libexec, f"amazon-ecs-init-{version}"))
    os.symlink(f"amazon-ecs-init-{version}", os.path.join(libexec, ".amazon-ecs-init.new"))
    os.rename(os.path.join(libexec, ".amazon-ecs-init.new"), os.path.join(libexec, "amazon-ecs-init"))
    for old in olds:
        if old != f"amazon-ecs-init-{version}":
            os.unlink(os.path.join(libexec, old))


@pytest.mark.docker
def test_running_supervisor_survives_an_in_place_upgrade(
    vendor: str, standin_dir: str, docker_lock: None, tmp_path: pathlib.Path
) -> None:
    a, b = f"{VERSION}", re.sub(r"\.post(\d+)$", lambda m: f".post{int(m.group(1)) + 1}", VERSION)
    built_a, built_b = _build_version(tmp_path, a, vendor), _build_version(tmp_path, b, vendor)
    prefix = str(tmp_path / "root")
    libexec = prefix + "/usr/libexec"
    for d in ("usr/libexec", "etc/ecs", "var/cache/ecs", "var/lib/ecs/data", "var/log/ecs"):
        os.makedirs(os.path.join(prefix, d))
    _install_version(libexec, built_a, a)
    program = libexec + "/amazon-ecs-init"
    cache = prefix + "/var/cache/ecs"
    shutil.copy(os.path.join(standin_dir, "ecs-agent-v1.tar"), cache + "/ecs-agent.tar")
    pathlib.Path(cache, "state").write_text("2\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv, extra = program_command(program, *args)
        env = dict(os.environ, ECS_INIT_PATH_PREFIX=prefix, **extra)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    assert run("reload-cache").returncode == 0
    argv, extra = program_command(program, "start")
    sup = subprocess.Popen(
        argv, env=dict(os.environ, ECS_INIT_PATH_PREFIX=prefix, ECS_LOGLEVEL="debug", **extra),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(sup.stdout or []), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: "v1.105.1" in json.dumps(metadata() or {}), 60), "".join(output)
        _install_version(libexec, built_b, b)  # B over A while A supervises
        assert os.readlink(program) == f"amazon-ecs-init-{b}" and not os.path.exists(f"{libexec}/amazon-ecs-init-{a}")
        assert run("version").stdout.startswith(f"ecs-init version {b} ")
        # the agent asks for a self-update: the supervisor (still A) now imports what loading needs
        shutil.copy(os.path.join(standin_dir, "ecs-agent-v2.tar"), cache + "/ecs-agent-v1.106.0.tar")
        pathlib.Path(cache, "desired-image").write_text("ecs-agent-v1.106.0.tar\n")
        pathlib.Path(prefix, "var/lib/ecs/data/standin-exit-once").write_text("42\n")
        upgraded = wait_until(lambda: "v1.106.0" in json.dumps(metadata() or {}), 60)
        log = _read(prefix + "/var/log/ecs/ecs-init.log")
        assert upgraded, log[-3000:] + "".join(output)[-3000:]
        assert "agent upgraded" in log
        assert sup.poll() is None
        status = run("status")  # the new version reads the old one's state
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        if sup.poll() is None:
            sup.send_signal(signal.SIGTERM)
        code = sup.wait(timeout=60)
        reader.join(timeout=5)
    text = "".join(output)
    assert code == 0, text[-3000:]
    for bad in ("ZipImportError", "Traceback", "bad local file header", "ImportError"):
        assert bad not in text + _read(prefix + "/var/log/ecs/ecs-init.log"), bad


# ------------------------------------------------------------ pip installs


def test_wheel_records_the_git_revision(tmp_path: pathlib.Path) -> None:
    """`pip install` from a git checkout: the wheel carries _build_info.py (setup.py's build_py hook)."""
    clone = tmp_path / "clone"  # this working tree's files, committed in a repository of their own
    for rel in _git("ls-files", "--cached", "--others", "--exclude-standard").splitlines():
        if os.path.isfile(os.path.join(ROOT, rel)):
            os.makedirs(clone / os.path.dirname(rel), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), clone / rel)
    git = ["git", "-C", str(clone), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    sh(*git, "init", "-q")
    sh(*git, "add", "-A")
    sh(*git, "commit", "-q", "-m", "snapshot")
    head = sh(*git, "rev-parse", "--short=8", "HEAD").strip()
    wheels = tmp_path / "wheels"
    sh(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
       "-w", str(wheels), str(clone))  # fmt: skip
    (wheel,) = glob.glob(str(wheels / "amazon_ecs_init-*.whl"))
    assert os.path.basename(wheel).startswith(f"amazon_ecs_init-{VERSION}-")  # pyproject reads __version__
    with zipfile.ZipFile(wheel) as zf:
        info = zf.read("ecs_init/_build_info.py").decode()
    assert f"GIT_SHORT_HASH = '{head}'" in info and "GIT_DIRTY = False" in info
    target = tmp_path / "site"
    sh(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
       "--target", str(target), wheel)  # fmt: skip
    probe = "from ecs_init import cli; print(cli.version_text())"
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], env={"PYTHONPATH": str(target)}, capture_output=True, text=True
    )
    assert out.stdout.splitlines()[0] == f"ecs-init version {VERSION} ({head})", out.stderr
