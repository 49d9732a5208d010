"""The RPM and Debian packages of SPEC §12, built here and inspected.

Both packages are built once per module (packaging/build-rpm.sh and
packaging/build-deb.sh, with the Python dependencies vendored once), their
metadata and scriptlets inspected, and the .deb's zipapp run from an
unpacked tree. Installing the .deb with dpkg and running it under the real
systemd is tests/integration/test_systemd_real.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from typing import Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import unit_file as uf  # noqa: E402

pytestmark = [pytest.mark.slow]

PKG = os.path.join(ROOT, "packaging")
PROGRAM = "/usr/libexec/amazon-ecs-init"
AGENT_TAR = "/var/cache/ecs/ecs-agent-v1.105.1.tar"
HAS_PLUGIN = os.path.exists(os.path.join(ROOT, "src/ecs_init/volume_plugin/server.py"))


def sh(*argv: str, **kw) -> str:  # type: ignore[no-untyped-def]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr[-2000:]}"
    return proc.stdout


def _need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing build tools: {' '.join(missing)} (apt-get install rpm dpkg-dev debhelper fakeroot)")


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("vendor") / "deps")
    sh(sys.executable, os.path.join(PKG, "build-zipapp.py"), "/dev/null", "--deps-only", "--deps-cache", path)
    return path


def _build(script: str, out: str, vendor: str, *extra: str) -> str:
    env = dict(os.environ, ECS_DEPS_DIR=vendor)
    sh(os.path.join(PKG, script), out, *extra, env=env)
    (found,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith((".rpm", ".deb"))]
    return found


@pytest.fixture(scope="module")
def rpm(tmp_path_factory: pytest.TempPathFactory, vendor: str) -> str:
    _need("rpmbuild", "rpm")
    return _build("build-rpm.sh", str(tmp_path_factory.mktemp("rpm")), vendor)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory, vendor: str) -> str:
    _need("dpkg-buildpackage", "dh", "fakeroot")
    return _build("build-deb.sh", str(tmp_path_factory.mktemp("deb")), vendor)


def expected_files(unitdir: str) -> set[str]:
    files = {
        "/etc/ecs",
        "/etc/ecs/ecs.config",
        "/etc/ecs/ecs.config.json",
        PROGRAM,
        "/usr/bin/amazon-ecs-init",
        "/usr/share/amazon-ecs-init",
        "/usr/share/amazon-ecs-init/ecs-notify.service",
        f"{unitdir}/ecs.service",
        "/var/cache/ecs",
        AGENT_TAR,
        "/var/cache/ecs/ecs-agent.tar",
        "/var/cache/ecs/state",
        "/var/lib/ecs",
        "/var/lib/ecs/data",
        "/var/log/ecs",
    }
    if HAS_PLUGIN:
        files.add("/usr/libexec/amazon-ecs-volume-plugin")
    for name in ("amazon-ecs-volume-plugin.service", "amazon-ecs-volume-plugin.socket"):
        if os.path.exists(os.path.join(PKG, "systemd", name)):
            files.add(f"{unitdir}/{name}")
    return files


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


def test_rpm_file_list_and_modes(rpm: str) -> None:
    files = set(sh("rpm", "-qlp", rpm).split())
    man = {f for f in files if f.startswith("/usr/share/man/man1/amazon-ecs-init.1")}
    assert len(man) == 1
    assert files - man == expected_files("/usr/lib/systemd/system")
    modes = _rpm_modes(rpm)
    assert modes[PROGRAM][0] == "-rwxr-xr-x"
    assert modes["/usr/bin/amazon-ecs-init"] == ("lrwxrwxrwx", "../libexec/amazon-ecs-init")
    assert modes["/var/cache/ecs/ecs-agent.tar"] == ("lrwxrwxrwx", "ecs-agent-v1.105.1.tar")
    assert modes["/var/cache/ecs"][0] == "drwx------"
    assert modes["/var/lib/ecs/data"][0] == "drwx------"
    assert modes["/var/log/ecs"][0] == "drwxr-xr-x"
    assert modes["/etc/ecs/ecs.config"][0] == "-rw-------"
    assert modes["/etc/ecs/ecs.config.json"][0] == "-rw-------"
    assert modes["/usr/lib/systemd/system/ecs.service"][0] == "-rw-r--r--"


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


def test_rpm_scriptlets_and_requires(rpm: str) -> None:
    scripts = sh("rpm", "-qp", "--scripts", rpm)
    assert "echo 2 > /var/cache/ecs/state" in scripts
    assert "for f in /etc/ecs/ecs.config /etc/ecs/ecs.config.json" in scripts
    assert "systemctl --no-reload preset ecs.service" in scripts
    assert "systemctl --no-reload disable --now ecs.service" in scripts
    requires = sh("rpm", "-qpR", rpm)
    assert "(docker or docker-ce or moby-engine)" in requires
    assert "iptables" in requires
    assert "python3 >= 3.9" in requires


def _fake_tools(tmp_path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A PATH directory whose systemctl/deb-systemd-* only record their calls."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    record = tmp_path / "calls.txt"
    for tool in ("systemctl", "deb-systemd-helper", "deb-systemd-invoke"):
        script = bindir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {record}\nexit 1\n')
        script.chmod(0o755)
    return str(bindir), str(record)


def _run_scriptlet(text: str, root: str, tmp_path, *args: str) -> None:  # type: ignore[no-untyped-def]
    """Run a package scriptlet with its /etc/ecs and /var/cache/ecs paths moved under ``root``."""
    for d in ("/etc/ecs", "/var/cache/ecs"):
        text = text.replace(d, root + d)
    bindir = str(tmp_path / "fakebin")
    if not os.path.isdir(bindir):
        _fake_tools(tmp_path)
    env = dict(os.environ, PATH=bindir + ":/usr/bin:/bin")
    proc = subprocess.run(["sh", "-e", "-c", text, "scriptlet", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _check_install_then_upgrade(post: str, tmp_path, install: tuple[str, ...], upgrade: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "root")
    os.makedirs(root + "/etc/ecs")
    os.makedirs(root + "/var/cache/ecs")
    _run_scriptlet(post, root, tmp_path, *install)
    for conf in ("ecs.config", "ecs.config.json"):
        path = f"{root}/etc/ecs/{conf}"
        assert os.path.getsize(path) == 0
        assert os.stat(path).st_mode & 0o777 == 0o600
    with open(root + "/var/cache/ecs/state") as fh:
        assert fh.read().strip() == "2"
    # the operator configured the host and the agent loaded the image (state 1)
    with open(root + "/etc/ecs/ecs.config", "w") as fh:
        fh.write("ECS_CLUSTER=mine\n")
    with open(root + "/etc/ecs/ecs.config.json", "w") as fh:
        fh.write('{"Cluster": "mine"}\n')
    with open(root + "/var/cache/ecs/state", "w") as fh:
        fh.write("1\n")
    _run_scriptlet(post, root, tmp_path, *upgrade)
    with open(root + "/etc/ecs/ecs.config") as fh:
        assert fh.read() == "ECS_CLUSTER=mine\n"
    with open(root + "/etc/ecs/ecs.config.json") as fh:
        assert fh.read() == '{"Cluster": "mine"}\n'
    with open(root + "/var/cache/ecs/state") as fh:
        assert fh.read().strip() == "2"  # the upgraded package's tarball replaces Docker's image


def test_rpm_post_creates_ghosts_and_resets_state_on_upgrade(rpm: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    post = sh("rpm", "-qp", "--qf", "%{POSTIN}", rpm)
    _check_install_then_upgrade(post, tmp_path, ("1",), ("2",))


@pytest.mark.parametrize(
    ("flavour", "args"),
    [("amzn", ("--define", "amzn 2023")), ("upstart", ("--with", "upstart"))],
)
def test_rpm_flavours(flavour: str, args: tuple[str, ...], vendor: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _need("rpmbuild", "rpm2archive")
    path = _build("build-rpm.sh", str(tmp_path / "out"), vendor, *args)
    files = set(sh("rpm", "-qlp", path).split())
    tree = tmp_path / "tree"
    tree.mkdir()
    sh("sh", "-c", f"rpm2archive - < '{path}' | tar -xzf -", cwd=str(tree))
    if flavour == "amzn":
        unit = uf.parse_unit(str(tree / "usr/lib/systemd/system/ecs.service"))
        assert unit.words("Unit", "After") == ["docker.service", "cloud-final.service"]
        assert unit.values("Unit", "Wants") == ["docker.service"]
    else:
        assert "/etc/init/ecs.conf" in files
        assert not any(f.endswith(".service") for f in files)
        assert "/etc/init/ecs.conf" in sh("rpm", "-qpc", path).split()
        with open(tree / "etc/init/ecs.conf") as fh:
            assert "start on stopped rc RUNLEVEL=[345]" in fh.read()
        scripts = sh("rpm", "-qp", "--scripts", path)
        assert "/sbin/stop ecs" in scripts and "systemctl" not in scripts


# ------------------------------------------------------------------- Debian


OURS = ("/etc/ecs", "/usr/libexec/", "/usr/bin/", "/usr/share/amazon-ecs-init", "/var/", "/lib/systemd/system/")


def test_deb_contents_and_modes(deb: str) -> None:
    entries: dict[str, tuple[str, str]] = {}
    for line in sh("dpkg-deb", "-c", deb).splitlines():
        fields = line.split()
        name = fields[5].lstrip(".").rstrip("/") or "/"
        entries[name] = (fields[0], fields[7] if len(fields) > 7 and fields[6] == "->" else "")
    ours = {
        n
        for n in entries
        if n.startswith(
            ("/etc/ecs", "/usr/libexec/", "/usr/bin/", "/usr/share/amazon-ecs-init", "/var/", "/lib/systemd/system/")
        )
        and n not in ("/var/cache", "/var/lib", "/var/log")
    }
    # ghost config files are created by postinst, not shipped
    assert ours == expected_files("/lib/systemd/system") - {"/etc/ecs/ecs.config", "/etc/ecs/ecs.config.json"}
    assert "/usr/share/man/man1/amazon-ecs-init.1.gz" in entries
    assert entries[PROGRAM][0] == "-rwxr-xr-x"
    assert entries["/usr/bin/amazon-ecs-init"] == ("lrwxrwxrwx", "../libexec/amazon-ecs-init")
    assert entries["/var/cache/ecs/ecs-agent.tar"] == ("lrwxrwxrwx", "ecs-agent-v1.105.1.tar")
    assert entries["/var/cache/ecs"][0] == "drwx------"
    assert entries["/var/lib/ecs/data"][0] == "drwx------"


def test_deb_control_and_scripts(deb: str) -> None:
    assert sh("dpkg-deb", "-f", deb, "Depends").strip() == "docker.io | docker-ce, iptables, python3 (>= 3.9)"
    assert sh("dpkg-deb", "-f", deb, "Package").strip() == "amazon-ecs-init"
    info = sh("dpkg-deb", "-I", deb)
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(rf"\b{script}\b", info), script
    postinst = sh("dpkg-deb", "-I", deb, "postinst")
    assert "echo 2 > /var/cache/ecs/state" in postinst
    # installed, never started by the package; re-enabled on upgrade only if the operator had enabled it
    assert "deb-systemd-invoke" not in postinst
    assert "deb-systemd-helper --quiet was-enabled 'ecs.service'" in postinst
    assert "rm -f /etc/ecs/ecs.config /etc/ecs/ecs.config.json" in sh("dpkg-deb", "-I", deb, "postrm")
    # no conffile would let dpkg prompt over (or replace) the operator's config
    assert "conffiles" not in info or "/etc/ecs/ecs.config" not in sh("dpkg-deb", "-I", deb, "conffiles")


def test_deb_postinst_creates_ghosts_and_resets_state_on_upgrade(deb: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    post = sh("dpkg-deb", "-I", deb, "postinst")
    _check_install_then_upgrade(post, tmp_path, ("configure", ""), ("configure", "1.105.0-1"))


# ------------------------------------------------- the installed program runs


@pytest.fixture(scope="module")
def installed(deb: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = str(tmp_path_factory.mktemp("installed") / "root")
    sh("dpkg-deb", "-x", deb, root)
    yield root


def test_installed_zipapp_is_self_contained(installed: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    program = installed + PROGRAM
    with open(program, "rb") as fh:
        assert fh.readline() == b"#!/usr/bin/python3 -I\n"
    # run from a directory far from the repository, with the system Python, isolated
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(ROOT, "src")}
    proc = subprocess.run([program, "version"], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "v1.105.1" in proc.stdout
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import docker, requests, urllib3, ecs_init; " + (
        "print(docker.__file__, requests.__file__, urllib3.__file__, ecs_init.__file__)"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", probe, program], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert all(path.startswith(program + "/") for path in out.stdout.split())
    # nothing compiled inside: zipimport could not load it
    with open(program, "rb") as fh:
        data = fh.read()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    usage = subprocess.run([program], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert usage.returncode == 1 and "pre-start" in usage.stdout + usage.stderr


def test_tar_members_of_bundled_agent(installed: str) -> None:
    """The bundled tarball is a `docker save` archive of the stand-in agent."""
    with tarfile.open(installed + AGENT_TAR) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["amazon/amazon-ecs-agent:latest"]
    with open(installed + "/var/cache/ecs/state") as fh:
        assert fh.read().strip() == "2"
    assert os.readlink(installed + "/var/cache/ecs/ecs-agent.tar") == "ecs-agent-v1.105.1.tar"
