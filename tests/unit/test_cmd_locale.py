"""Commands whose output is parsed run with LC_ALL=C (SPEC §5), whatever the caller's locale.

The German messages below are real: this host has the translations of
coreutils, procps and apparmor installed, and ``LANGUAGE`` picks them under
the C.UTF-8 locale. Without ``LC_ALL=C`` each of these commands answers in
German and the English phrases the program looks for are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ecs_init.core.cmd import Runner, command_env

GERMAN = {"LANG": "C.UTF-8", "LANGUAGE": "de"}


def _german_without_fix(argv: list[str]) -> str:
    """The same command run without LC_ALL=C: proves the environment really translates."""
    env = {**os.environ, **GERMAN}
    env.pop("LC_ALL", None)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    return proc.stderr + proc.stdout


@pytest.fixture
def german(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GERMAN.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LC_ALL", raising=False)


def test_command_env_sets_lc_all_and_keeps_the_rest() -> None:
    base = {"PATH": "/usr/bin", "HTTP_PROXY": "http://proxy:3128", "LANG": "de_DE.UTF-8", "LC_ALL": "de_DE.UTF-8"}
    env = command_env(base)
    assert env == {**base, "LC_ALL": "C"}
    assert base["LC_ALL"] == "de_DE.UTF-8"  # the caller's mapping is not changed


def test_runner_with_explicit_env_also_gets_lc_all(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = Runner(env={"PATH": os.environ.get("PATH", ""), **GERMAN})
    out = runner.run(["sh", "-c", 'echo "$LC_ALL|$LANGUAGE"']).stdout.strip()
    assert out == "C|de"
    assert runner.env is not None and "LC_ALL" not in runner.env


@pytest.mark.usefixtures("german")
def test_error_text_is_english_under_a_german_locale() -> None:
    if "nicht" not in _german_without_fix(["ls", "/nonexistent-ecs-init"]):
        pytest.skip("coreutils German messages are not installed")
    proc = Runner().run(["ls", "/nonexistent-ecs-init"], check=False)
    assert "No such file or directory" in proc.stderr


@pytest.mark.usefixtures("german")
@pytest.mark.skipif(shutil.which("sysctl") is None, reason="no sysctl")
def test_sysctl_missing_key_text_is_english_under_a_german_locale() -> None:
    """loopback recognises a missing docker0 key by 'cannot stat' (read-only: -n)."""
    argv = ["sysctl", "-n", "net.ipv6.conf.no-such-iface-ecs.accept_ra"]
    if "cannot stat" in _german_without_fix(argv):
        pytest.skip("procps German messages are not installed")
    proc = Runner().run(argv, check=False)
    assert proc.returncode != 0
    assert "cannot stat" in proc.stderr


@pytest.mark.usefixtures("german")
@pytest.mark.skipif(shutil.which("apparmor_parser") is None, reason="no apparmor_parser")
def test_apparmor_parser_errors_are_english_under_a_german_locale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    bad.write_text("profile x {\n  network inetz,\n}\n")
    argv = ["apparmor_parser", "-QK", str(bad)]
    if "Invalid network entry" in _german_without_fix(argv):
        pytest.skip("apparmor German messages are not installed")
    proc = Runner().run(argv, check=False)
    assert proc.returncode != 0
    assert "Invalid network entry" in proc.stderr
