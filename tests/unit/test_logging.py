from __future__ import annotations

import logging
import os

from ecs_init.core import logsetup, redact


def test_logfmt_line_shape() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, 'pre-start "quoted"\nnext', None, None)
    record.created = 1795815393.0  # 2026-11-27T21:36:33Z
    line = logsetup.LogfmtFormatter().format(record)
    assert line == 'level=info time=2026-11-27T21:36:33Z msg="pre-start \\"quoted\\"\\nnext"'


def test_levels() -> None:
    assert logsetup.parse_level("debug") == logging.DEBUG
    assert logsetup.parse_level("warn") == logging.WARNING
    assert logsetup.parse_level("crit") == logging.CRITICAL
    assert logsetup.parse_level("none") is None
    assert logsetup.parse_level("bogus") == logging.INFO


def test_file_handler_rotates_hourly_keeping_24(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "log" / "ecs-init.log")
    logsetup.setup(path, "info", console=False)
    try:
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, logsetup.SafeFileHandler)]
        assert len(handlers) == 1
        assert logsetup.ROTATIONS_KEPT == 24
        logging.getLogger("t").info("hello %s", "world")
        logging.getLogger("t").debug("hidden")
        for h in handlers:
            h.flush()
        with open(path) as fh:
            text = fh.read()
        assert 'msg="hello world"' in text and "hidden" not in text
    finally:
        logsetup.setup(None, "info", console=False)
    assert os.path.exists(path)


def test_secrets_never_logged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "ecs-init.log")
    redact.register_secrets({"ECS_ENGINE_AUTH_DATA": '{"https://r":{"auth":"c2VjcmV0"}}', "MY_TOKEN": "tok-123456"})
    logsetup.setup(path, "debug", console=False)
    try:
        logging.getLogger("t").info(
            "config: %s", 'ECS_ENGINE_AUTH_DATA={"https://r":{"auth":"c2VjcmV0"}} MY_TOKEN=tok-123456'
        )
        for h in logging.getLogger().handlers:
            h.flush()
        with open(path) as fh:
            text = fh.read()
        assert "c2VjcmV0" not in text and "tok-123456" not in text
        assert "<redacted>" in text
    finally:
        logsetup.setup(None, "info", console=False)


def test_redact_env() -> None:
    env = {"ECS_ENGINE_AUTH_DATA": "x", "DB_PASSWORD": "p", "ECS_CLUSTER": "c", "AWS_SESSION_TOKEN": "t"}
    assert redact.redact_env(env) == {
        "ECS_ENGINE_AUTH_DATA": "<redacted>",
        "DB_PASSWORD": "<redacted>",
        "ECS_CLUSTER": "c",
        "AWS_SESSION_TOKEN": "<redacted>",
    }
