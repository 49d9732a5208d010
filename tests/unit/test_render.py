"""`render`: the create config without Docker; secret redaction."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from ecs_init.agent.spec import build_spec
from ecs_init.core import redact
from ecs_init.core.cmd import Runner
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.host.context import HostContext
from ecs_init.ops import render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "src", "ecs_init", "schemas", "render.schema.json")

AUTH = '{"https://registry.example":{"auth":"c2VjcmV0OnNlY3JldA==","email":"a@b"}}'
CONFIG = (
    "ECS_CLUSTER=ops\n"
    "ECS_ENGINE_AUTH_TYPE=dockercfg\n"
    f"ECS_ENGINE_AUTH_DATA={AUTH}\n"
    'ECS_AGENT_LABELS={"team":"infra","deploy_token":"tok-123456"}\n'
    "ECS_LOG_DRIVER=splunk\n"
    'ECS_LOG_OPTS={"splunk-token":"abcdef","splunk-url":"https://splunk.example"}\n'
    "MY_PASSWORD=hunter22\n"
)


class _NeverDocker:
    def __call__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("render must not contact Docker")


def _ctx(tmp_path, text: str = CONFIG, environ: dict[str, str] | None = None) -> HostContext:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "etc/ecs"), exist_ok=True)
    with open(os.path.join(root, "etc/ecs/ecs.config"), "w") as fh:
        fh.write(text)
    env = {"ECS_INIT_PATH_PREFIX": root, "PATH": os.environ.get("PATH", ""), **(environ or {})}
    # A Docker host that cannot answer: render must not need it.
    env.setdefault("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    return HostContext(cfg=Config.load(environ=env), runner=Runner(), docker_factory=_NeverDocker())


def _validate(doc: dict) -> None:  # type: ignore[type-arg]
    with open(SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))


def test_render_redacts_every_secret_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = render.render(_ctx(tmp_path))
    _validate(doc)
    text = json.dumps(doc)
    for secret in ("c2VjcmV0OnNlY3JldA==", "tok-123456", "abcdef", "hunter22"):
        assert secret not in text, secret
    env = dict(entry.split("=", 1) for entry in doc["body"]["Env"])
    assert env["ECS_ENGINE_AUTH_DATA"] == redact.REDACTED
    assert env["ECS_ENGINE_AUTH_TYPE"] == "dockercfg"  # SPEC §11: the auth type is not a secret
    assert env["MY_PASSWORD"] == redact.REDACTED
    assert json.loads(env["ECS_AGENT_LABELS"]) == {"team": "infra", "deploy_token": redact.REDACTED}
    assert json.loads(env["ECS_LOG_OPTS"])["splunk-url"] == "https://splunk.example"
    assert doc["body"]["Labels"] == {"team": "infra", "deploy_token": redact.REDACTED}
    assert doc["body"]["HostConfig"]["LogConfig"] == {
        "Type": "splunk",
        "Config": {"splunk-token": redact.REDACTED, "splunk-url": "https://splunk.example"},
    }
    assert doc["secrets_redacted"] is True
    assert env["ECS_CLUSTER"] == "ops"


def test_show_secrets_gives_exactly_the_spec_start_builds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    doc = render.render(ctx, api_version="1.41", show_secrets=True)
    _validate(doc)
    from ecs_init.agent import hostfacts

    offline = HostContext(cfg=ctx.cfg, runner=ctx.runner, docker_factory=_NeverDocker())
    expected = build_spec(ctx.cfg, hostfacts.gather(offline, docker_api_version="1.41")).engine_body()
    assert doc["body"] == expected
    assert doc["name"] == "ecs-agent"
    assert (doc["api_version"], doc["api_version_assumed"], doc["notes"]) == ("1.41", False, [])
    assert f"ECS_ENGINE_AUTH_DATA={AUTH}" in doc["body"]["Env"]


def test_api_version_is_assumed_and_said_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = render.render(_ctx(tmp_path, "ECS_CLUSTER=a\n"))
    assert (doc["api_version"], doc["api_version_assumed"]) == ("1.44", True)
    assert "1.44 assumed" in doc["notes"][0]
    assert doc["body"]["HostConfig"]["Init"] is True


def test_old_api_version_changes_the_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = render.render(_ctx(tmp_path, "ECS_CLUSTER=a\n"), api_version="1.24")
    assert "Init" not in doc["body"]["HostConfig"]
    assert "ECS_ENABLE_TASK_ENI=false" in doc["body"]["Env"]


def test_spec_warnings_are_shown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = render.render(_ctx(tmp_path, "ECS_AGENT_LABELS={broken\nECS_LOG_DRIVER=loki\n"))
    assert len(doc["warnings"]) == 2
    assert any("ECS_AGENT_LABELS" in w for w in doc["warnings"])
    assert doc["body"]["HostConfig"]["LogConfig"]["Type"] == "json-file"


def test_human_output_sections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = render.format_human(render.render(_ctx(tmp_path)))
    for heading in ("Container ecs-agent from image amazon/amazon-ecs-agent:latest", "Environment (", "Labels (2):",
                    "Binds (", "Host config:", "  NetworkMode: host", "  CapAdd: NET_ADMIN, SYS_ADMIN"):  # fmt: skip
        assert heading in text, heading
    assert "  deploy_token=<redacted>" in text
    assert "  LogConfig: splunk splunk-token=<redacted> splunk-url=https://splunk.example" in text
    assert "hunter22" not in text
    # Environment keeps start's order: the defaults first, the operator's settings after them.
    assert text.index("ECS_LOGFILE=") < text.index("ECS_CLUSTER=ops")


def test_no_docker_stand_in_refuses_use() -> None:
    with pytest.raises(InitError):
        render._no_docker().api_version  # noqa: B018


def test_redact_env_entries_and_json() -> None:
    entries = ["A=1", "ECS_ENGINE_AUTH_DATA=x", "EMPTY_TOKEN=", 'OPTS={"x-token":"s","n":{"password":"p"}}', "NOEQ"]
    assert redact.redact_env_entries(entries) == [
        "A=1",
        f"ECS_ENGINE_AUTH_DATA={redact.REDACTED}",
        "EMPTY_TOKEN=",
        f'OPTS={{"x-token":"{redact.REDACTED}","n":{{"password":"{redact.REDACTED}"}}}}',
        "NOEQ",
    ]
    assert redact.redact_value("ECS_AGENT_LABELS", '{"team":"a"}') == '{"team":"a"}'


def test_nested_secrets_are_registered_for_logs() -> None:
    redact.register_secrets({"ECS_LOG_OPTS": '{"splunk-token":"nested-secret-value"}'})
    assert redact.redact_text("token nested-secret-value here") == f"token {redact.REDACTED} here"
