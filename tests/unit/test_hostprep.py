"""Issue 9 pieces owned by the engine: EBS directory, gMSA realm check, step order."""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any, Sequence

import pytest

from ecs_init import actions as engine
from ecs_init.agent import hostfacts
from ecs_init.agent.spec import build_spec
from ecs_init.core.config import Config
from ecs_init.core.errors import CommandError
from ecs_init.core.paths import Paths
from ecs_init.host import ebs
from ecs_init.host.context import HostContext


class FakeRunner:
    def __init__(self, stdout: str = "", missing: bool = False):
        self.stdout = stdout
        self.missing = missing
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return None

    def run(self, argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.missing:
            raise CommandError(f"{argv[0]}: command not found")
        return subprocess.CompletedProcess(list(argv), 0, self.stdout, "")


def ctx_for(tmp_path: Any, environ: dict[str, str] | None = None, runner: Any = None) -> HostContext:
    cfg = Config.load(environ or {}, Paths(prefix=str(tmp_path)))
    return HostContext(cfg=cfg, runner=runner or FakeRunner())


def test_ebs_dir_created_0755(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    old = os.umask(0o077)
    try:
        ebs.setup(ctx)
    finally:
        os.umask(old)
    assert os.stat(ctx.paths.ebs_dir).st_mode & 0o777 == 0o755


def test_ebs_dir_failure_is_logged_and_turns_ebs_off(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "mnt").write_text("a file where a directory should be")
    ctx = ctx_for(tmp_path)
    with caplog.at_level(logging.ERROR):
        ebs.setup(ctx)  # no exception: pre-start goes on
    assert any("EBS mount directory" in r.getMessage() for r in caplog.records)
    facts = hostfacts.gather(ctx, docker_api_version="1.44")
    assert build_spec(ctx.cfg, facts).env["ECS_EBSTA_SUPPORTED"] == "false"


def test_realm_list_only_with_gmsa(tmp_path: Any) -> None:
    runner = FakeRunner("example.com\n  type: kerberos\n  realm-name: EXAMPLE.COM\n")
    assert hostfacts.realm_output(ctx_for(tmp_path, runner=runner)) == ""
    assert runner.calls == []
    ctx = ctx_for(tmp_path, {"ECS_GMSA_SUPPORTED": "true"}, runner)
    assert "realm-name" in hostfacts.realm_output(ctx)
    assert runner.calls == [["realm", "list"]]
    facts = hostfacts.gather(ctx, docker_api_version="1.44")
    assert build_spec(ctx.cfg, facts).env["ECS_DOMAIN_JOINED_LINUX_INSTANCE"] == "true"


def test_missing_realm_binary_is_not_domain_joined(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    ctx = ctx_for(tmp_path, {"ECS_GMSA_SUPPORTED": "true"}, FakeRunner(missing=True))
    assert hostfacts.realm_output(ctx) == ""
    assert "cannot list realms" in caplog.text


def test_pre_start_steps_in_spec_order() -> None:
    assert [name for name, _ in engine.PRE_START] == [
        "GPU setup",
        "AppArmor",
        "loopback routing and IPv6 router advertisements",
        "IPv6-only route",
        "netfilter rules",
        "EBS mount directory",
        "agent image",
    ]


def test_a_failing_step_names_itself(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecs_init.core.errors import InitError

    def boom(_ctx: HostContext) -> None:
        raise CommandError("iptables: command not found")

    netfilter_setup = dict(engine.PRE_START)["netfilter rules"]
    monkeypatch.setattr(
        engine, "step_function", lambda target: boom if target == netfilter_setup else (lambda _c: None)
    )
    ctx = ctx_for(tmp_path)
    with pytest.raises(InitError, match="pre-start: netfilter rules failed: iptables: command not found") as err:
        engine.run_pre_start(ctx)
    assert err.value.exit_code == 255
