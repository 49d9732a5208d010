from __future__ import annotations

import os

import pytest

from ecs_init.core import envfile, settings
from ecs_init.core.config import Config
from ecs_init.core.envfile import parse_env_text, read_env_file
from ecs_init.core.paths import Paths
from ecs_init.core.settings import parse_bool
from ecs_init.docker.api import version_tuple


def test_paths_without_prefix_are_the_real_ones() -> None:
    p = Paths()
    assert p.ecs_config == "/etc/ecs/ecs.config"
    assert p.ecs_config_json == "/etc/ecs/ecs.config.json"
    assert p.instance_config == "/var/lib/ecs/ecs.config"
    assert p.data_dir == "/var/lib/ecs/data"
    assert p.init_log == "/var/log/ecs/ecs-init.log"
    assert p.log_dir == "/var/log/ecs"
    assert p.cache_tarball == "/var/cache/ecs/ecs-agent.tar"
    assert p.cache_state == "/var/cache/ecs/state"
    assert p.desired_image == "/var/cache/ecs/desired-image"
    assert p.ebs_dir == "/mnt/ecs/ebs"
    assert p.gpu_info == "/var/lib/ecs/gpu/nvidia-gpu-info.json"


def test_paths_under_prefix() -> None:
    p = Paths.from_env({"ECS_INIT_PATH_PREFIX": "/tmp/x/"})
    assert p.ecs_config == "/tmp/x/etc/ecs/ecs.config"
    assert p.cache_state == "/tmp/x/var/cache/ecs/state"
    assert p.ebs_dir == "/tmp/x/mnt/ecs/ebs"


def test_env_parsing_rules() -> None:
    text = "\n\n  A=1  \nnoequals\nB = two=2\n=empty\n#C=3\n  D=\nA=override\n"
    assert parse_env_text(text) == {"A": "override", "B": "two=2", "#C": "3", "D": ""}


def test_missing_file_is_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert read_env_file(str(tmp_path / "nope")) == {}


def test_binary_and_huge_files(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "bin"
    binary.write_bytes(b"ECS_CLUSTER=a\x00\xff\xfeB=2\n")
    assert read_env_file(str(binary))["ECS_CLUSTER"] == "a"
    huge = tmp_path / "huge"
    huge.write_bytes(b"A=" + b"x" * (2 * 1024 * 1024))
    assert read_env_file(str(huge)) == {}
    assert "larger than" in caplog.text
    assert read_env_file(str(tmp_path)) == {}  # a directory


def test_merge_order_operator_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(tmp_path / "etc/ecs")
    os.makedirs(tmp_path / "var/lib/ecs")
    (tmp_path / "var/lib/ecs/ecs.config").write_text("A=instance\nB=instance\n")
    (tmp_path / "etc/ecs/ecs.config").write_text("B=operator\nC=operator\n")
    (tmp_path / "etc/ecs/ecs.config").write_text("B=operator\nC=operator\nECS_LOG_DRIVER=syslog\nECS_LOG_OPTS={}\n")
    cfg = Config.load({"C": "process", "ECS_LOG_OPTS": '{"a":"b"}'}, paths)
    assert cfg.merged == {
        "A": "instance", "B": "operator", "C": "operator", "ECS_LOG_DRIVER": "syslog", "ECS_LOG_OPTS": "{}"
    }  # fmt: skip
    # own settings: process env first, then the merged files, then the table's default
    assert cfg.text(settings.LOG_OPTS) == '{"a":"b"}'
    assert cfg.origin(settings.LOG_OPTS) == "the process environment"
    assert cfg.text(settings.LOG_DRIVER) == "syslog"
    assert cfg.origin(settings.LOG_DRIVER) == paths.ecs_config
    assert cfg.text(settings.LOG_FILE_SIZE) == "16m"
    assert cfg.origin(settings.LOG_FILE_SIZE) == ""


def test_environment_only_and_files_only_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(tmp_path / "etc/ecs")
    (tmp_path / "etc/ecs/ecs.config").write_text('DOCKER_HOST=unix:///file.sock\nECS_AGENT_LABELS={"f":"1"}\n')
    cfg = Config.load({"ECS_AGENT_LABELS": '{"env":"1"}'}, paths)
    assert cfg.docker_host() == "unix:///var/run/docker.sock"  # DOCKER_HOST: the process environment only
    assert cfg.raw(settings.AGENT_LABELS) == '{"f":"1"}'  # labels: what the agent gets, the files'
    cfg = Config.load({"DOCKER_HOST": "unix:///env.sock"}, paths)
    assert cfg.docker_host() == "unix:///env.sock"


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(value: str) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(value: str) -> None:
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["yes", "tRUE", "", " true", "2"])
def test_parse_bool_invalid(value: str) -> None:
    assert parse_bool(value) is None


def test_flag_unparsable_is_false_and_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    cfg = Config(paths=Paths(), environ={"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": "yes"})
    assert cfg.flag(settings.SKIP_LOCALHOST_TRAFFIC_FILTER) is False
    assert "not a boolean" in caplog.text
    assert cfg.flag(settings.ALLOW_OFFHOST_INTROSPECTION_ACCESS) is False  # unset


def test_version_tuple() -> None:
    assert version_tuple("1.41") < version_tuple("1.44")
    assert version_tuple("1.9") < version_tuple("1.25")
    assert version_tuple("junk") == (0,)


# ---------------------------------------------------------------- exact answers (issue 21)


def test_paths_from_the_environment() -> None:
    assert Paths.from_env({}).prefix == ""
    assert Paths.from_env({"ECS_INIT_PATH_PREFIX": "/opt/BOX//"}).prefix == "/opt/BOX"
    assert Paths.from_env({"ECS_INIT_PATH_PREFIX": "/"}).ecs_config == "/etc/ecs/ecs.config"


def test_paths_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_INIT_PATH_PREFIX", "/srv/root")
    assert Paths.from_env().prefix == "/srv/root"
    cfg = Config.load()
    assert cfg.paths == Paths(prefix="/srv/root") and cfg.environ["ECS_INIT_PATH_PREFIX"] == "/srv/root"


def test_config_load_takes_the_prefix_from_the_given_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    os.makedirs(tmp_path / "etc/ecs")
    (tmp_path / "etc/ecs/ecs.config").write_text("ECS_CLUSTER=prefixed\n")
    cfg = Config.load({"ECS_INIT_PATH_PREFIX": str(tmp_path)})
    assert cfg.paths == Paths(prefix=str(tmp_path))
    assert cfg.operator == {"ECS_CLUSTER": "prefixed"} and cfg.instance == {}
    given = Paths(prefix=str(tmp_path / "other"))
    assert Config.load({}, given).paths is given


RESET = settings.BACKOFF_RESET_SECONDS


def test_raw_is_empty_when_unset_and_the_process_env_wins_even_empty() -> None:
    cfg = Config(paths=Paths(), environ={"ECS_LOG_DRIVER": ""}, operator={"ECS_LOG_DRIVER": "syslog"})
    assert cfg.raw(settings.LOG_DRIVER) == ""
    assert cfg.text(settings.LOG_DRIVER) == "json-file"  # empty: the default
    assert Config(paths=Paths(), environ={}).raw(RESET) == ""


def test_an_unset_switch_is_off_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={})
    for key in ("ECS_EXTERNAL", "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER"):
        assert cfg.flag(settings.BY_NAME[key]) is False
    assert caplog.records == []


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (None, 60.0),
        ("", 60.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("-1", 60.0),
        ("-0.001", 60.0),
        ("nan", 60.0),
        ("NaN", 60.0),
        ("inf", 60.0),
        ("ten", 60.0),
    ],
)
def test_seconds_accept_only_finite_numbers_in_range(raw: str | None, value: float) -> None:
    """ECS_INIT_BACKOFF_RESET_SECONDS=nan would never reset the backoff; -1 would reset it always."""
    environ = {} if raw is None else {RESET.name: raw}
    assert Config(paths=Paths(), environ=environ).seconds(RESET) == value


def test_seconds_from_the_files_and_the_process_env_first() -> None:
    assert Config(paths=Paths(), environ={RESET.name: "3"}, operator={RESET.name: "4"}).seconds(RESET) == 3.0
    assert Config(paths=Paths(), environ={}, operator={RESET.name: "5"}).seconds(RESET) == 5.0


def test_a_bad_number_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={RESET.name: "nan", settings.ROLLBACK_WINDOW.name: "x"})
    cfg.seconds(RESET)
    cfg.seconds(RESET)
    cfg.seconds(settings.ROLLBACK_WINDOW)
    assert [r.getMessage() for r in caplog.records] == [
        "ECS_INIT_BACKOFF_RESET_SECONDS='nan' is out of range [0, 86400]; using 60",
        f"ECS_INIT_ROLLBACK_WINDOW='x' is not a number of seconds; using {settings.ROLLBACK_WINDOW.default}",
    ]


def test_docker_host() -> None:
    assert Config(paths=Paths(), environ={}).docker_host() == "unix:///var/run/docker.sock"
    assert Config(paths=Paths(), environ={"DOCKER_HOST": ""}).docker_host() == "unix:///var/run/docker.sock"
    assert Config(paths=Paths(), environ={"DOCKER_HOST": "unix:///x.sock"}).docker_host() == "unix:///x.sock"
    # only the process environment counts
    assert (
        Config(paths=Paths(), environ={}, operator={"DOCKER_HOST": "unix:///y"}).docker_host().endswith("docker.sock")
    )


def test_env_file_size_boundary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Exactly 1 MiB is read; one byte more and the file is refused."""
    limit = 1024 * 1024
    exact = tmp_path / "exact"
    exact.write_bytes(b"A=1\n" + b"#" * (limit - 4))
    assert read_env_file(str(exact)) == {"A": "1"}
    over = tmp_path / "over"
    over.write_bytes(b"A=1\n" + b"#" * (limit - 3))
    assert read_env_file(str(over)) == {}


def test_env_file_lines_exactly() -> None:
    entries, ignored = envfile.parse_lines("A=1\n\n# note\n  #B=2\nnoequals\n =x\nC = 3 \n")
    assert entries == [envfile.Entry(1, "A", "1"), envfile.Entry(4, "#B", "2"), envfile.Entry(7, "C", "3")]
    assert ignored == [(5, "noequals")]


def test_env_file_read_says_what_it_found(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = envfile.read(str(tmp_path / "missing"))
    assert (missing.path, missing.present, missing.error, missing.values) == (str(tmp_path / "missing"), False, "", {})
    good = tmp_path / "good"
    good.write_bytes(b"A=1\n")
    assert (envfile.read(str(good)).present, envfile.read(str(good)).error) == (True, "")
    directory = envfile.read(str(tmp_path))
    assert (directory.present, directory.error) == (True, "is a directory")
    locked = tmp_path / "locked"
    locked.write_text("A=1\n")
    locked.chmod(0)
    if os.geteuid() != 0:  # root reads it anyway
        assert envfile.read(str(locked)).error == "cannot be read: Permission denied"


def test_instance_flag_reads_the_instance_file_only() -> None:
    gpu = settings.BY_NAME["ECS_ENABLE_GPU_SUPPORT"]
    assert Config(paths=Paths(), environ={}, instance={gpu.name: "true"}).instance_flag(gpu) is True
    assert Config(paths=Paths(), environ={gpu.name: "true"}, operator={gpu.name: "true"}).instance_flag(gpu) is False


# ---------------------------------------------------------------- the text rule's exact refusals (issue 21)
# pre-start and start refuse a file with these words (config_problems puts them in the one error line)

NUL_REFUSAL = "holds NUL bytes: it is a binary file, not KEY=VALUE text"
NOT_TEXT = "% of it is not text (bytes that are not UTF-8, control characters)"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("ECS_CLUSTER=a\x00b\n", NUL_REFUSAL),
        ("\ufffd", "is binary: 100" + NOT_TEXT),
        ("ECS_CLUSTER=\ufffd\ufffd\ufffd", "is binary: 20" + NOT_TEXT),
        ("ECS_CLUSTER prod\n", "has no KEY=VALUE line: none of its 1 line(s) sets a variable (lines 1)"),
        ("foo\nbar\n", "has no KEY=VALUE line: none of its 2 line(s) sets a variable (lines 1, 2)"),
        ("# set\n\nexport A=1\n  \nB 2\n", "has no KEY=VALUE line: none of its 2 line(s) sets a variable (lines 3, 5)"),
        ("ECS_CLUSTER=a\nfoo\nbar baz\n", "is mostly not KEY=VALUE text: 2 of its 3 lines are not (lines 2, 3)"),
        ("a\nb\nc\nd\ne\n", "has no KEY=VALUE line: none of its 5 line(s) sets a variable (lines 1, 2, 3, 4, 5)"),
        (
            "a\nb\nc\nd\ne\nf\n",
            "has no KEY=VALUE line: none of its 6 line(s) sets a variable (lines 1, 2, 3, 4, 5 and 1 more)",
        ),
        (
            "A=1\n" + "x\n" * 8,
            "is mostly not KEY=VALUE text: 8 of its 9 lines are not (lines 2, 3, 4, 5, 6 and 3 more)",
        ),
    ],
)
def test_text_rule_refusals_exactly(text: str, refusal: str) -> None:
    assert envfile.text_refusal(text) == refusal


@pytest.mark.parametrize(
    "text",
    [
        "ABCDEFGH=\ufffd",  # 1 of 10 characters is not text: exactly 10 %, not more
        "# one\n# two\n# three\nECS_CLUSTER=a\n",  # comments are not lines that fail to set a variable
        "ECS_X=a=b\n",  # the name is what comes before the first '='
        "ECS_CLUSTER=a\nnot a setting\n",  # half: not mostly
    ],
)
def test_text_rule_accepts_exactly(text: str) -> None:
    assert envfile.text_refusal(text) == ""


def test_read_keeps_the_refusal_and_an_unreadable_file_is_present(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    refused = tmp_path / "refused"
    refused.write_bytes(b"ECS_CLUSTER prod\n")
    assert envfile.read(str(refused)).refusal.startswith("has no KEY=VALUE line")

    def denied(path: str, limit: int, **_kw: object) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(envfile, "read_regular", denied)
    unreadable = envfile.read(str(refused))
    assert (unreadable.present, unreadable.error, unreadable.refusal) == (True, "cannot be read: Permission denied", "")


# ---------------------------------------------------------------- where a value came from, logged once


def test_origin_of_each_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    gpu = settings.BY_NAME["ECS_ENABLE_GPU_SUPPORT"]
    cfg = Config(paths=paths, environ={}, instance={gpu.name: "true", RESET.name: "5"})
    assert cfg.origin(gpu) == paths.instance_config
    assert cfg.origin(RESET) == paths.instance_config
    assert Config(paths=paths, environ={}, operator={RESET.name: "5"}).origin(RESET) == paths.ecs_config
    env_only = settings.BY_NAME["DOCKER_HOST"]  # read from the process environment only
    assert Config(paths=paths, environ={}, operator={env_only.name: "unix:///y"}).origin(env_only) == ""


LOGLEVEL = settings.BY_NAME["ECS_LOGLEVEL"]


def test_a_bad_choice_is_the_default_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={LOGLEVEL.name: "loud"})
    assert cfg.text(LOGLEVEL) == "info" and cfg.text(LOGLEVEL) == "info"
    assert [r.getMessage() for r in caplog.records] == [
        "ECS_LOGLEVEL='loud' is not one of debug, info, warn, error, crit, none; using info"
    ]


def test_a_problem_reported_already_is_not_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={LOGLEVEL.name: "loud", RESET.name: "nan"})
    cfg.mark_reported([LOGLEVEL.name, RESET.name])
    assert cfg.text(LOGLEVEL) == "info" and cfg.seconds(RESET) == 60.0
    assert caplog.records == []


# ---------------------------------------------------------------- the number rule's words and bounds


def test_a_count_that_is_not_whole_says_so() -> None:
    failures = settings.ROLLBACK_FAILURES
    assert settings.read_number(failures, "1.5") == (
        3.0,
        "ECS_INIT_ROLLBACK_FAILURES='1.5' is not a whole number; using 3",
    )
    assert settings.read_number(failures, " 7 ") == (7.0, None)


def test_both_ends_of_a_range_are_accepted() -> None:
    assert settings.read_number(RESET, "86400") == (86400.0, None)
    assert settings.read_number(RESET, "0") == (0.0, None)
    assert settings.read_number(RESET, "86400.5")[1] == (
        "ECS_INIT_BACKOFF_RESET_SECONDS='86400.5' is out of range [0, 86400]; using 60"
    )


def test_an_open_range_is_shown_with_infinities() -> None:
    up = settings.Setting("X_UP", settings.Kind.SECONDS, "1", "doc", low=0.5)
    assert settings.read_number(up, "1e9") == (1e9, None)
    assert settings.read_number(up, "0.1")[1] == "X_UP='0.1' is out of range [0.5, ∞]; using 1"
    down = settings.Setting("X_DOWN", settings.Kind.SECONDS, "1", "doc", high=2)
    assert settings.read_number(down, "-1e9") == (-1e9, None)
    assert settings.read_number(down, "3")[1] == "X_DOWN='3' is out of range [-∞, 2]; using 1"


# ---------------------------------------------------------------- no link for the instance file; a line cap


def test_the_instance_file_is_never_read_through_a_symlink(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """/var/lib/ecs is writable from the agent's container: a link there must not feed settings in."""
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(tmp_path / "etc/ecs")
    os.makedirs(tmp_path / "var/lib/ecs")
    target = tmp_path / "elsewhere"
    target.write_text("ECS_ENABLE_GPU_SUPPORT=true\nB=linked\n")
    os.symlink(target, paths.instance_config)
    os.symlink(target, paths.ecs_config)  # the operator's own file: a link is followed
    cfg = Config.load({}, paths)
    operator, instance = cfg.files
    assert (operator.error, operator.values["B"]) == ("", "linked")
    assert (instance.present, instance.error, instance.values) == (True, "is a symlink (not followed)", {})
    assert cfg.instance == {} and cfg.file_errors() == [
        f"config file {paths.instance_config} is a symlink (not followed); ignoring it"
    ]


def test_a_file_not_followed_that_cannot_be_read_says_why(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def denied(path: str, limit: int, **_kw: object) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(envfile, "read_regular", denied)
    found = envfile.read(str(tmp_path / "ecs.config"), follow_symlinks=False)
    assert (found.present, found.error) == (True, "cannot be read: Permission denied")


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("A=1\n" * 10000, False),  # 10 000 lines
        ("A=1\n" * 9999 + "\n" * 50, False),  # trailing blank lines do not count
        ("A=1\n" * 10001, True),
        ("\n" + "A=1\n" * 10000, True),  # a leading blank line does
    ],
)
def test_an_env_file_of_more_than_ten_thousand_lines_is_ignored(tmp_path, text: str, refused: bool) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ecs.config"
    path.write_text(text)
    found = envfile.read(str(path))
    assert found.error == ("has more than 10000 lines" if refused else "")
    assert found.values == ({} if refused else {"A": "1"})


def test_paths_and_entries_are_values() -> None:
    """Plain classes on the start-up path keep the value semantics the dataclasses had."""
    from ecs_init.core.envfile import Entry

    assert Paths("/p") == Paths(prefix="/p") and Paths("/p") != Paths("/q") and Paths() != "/p"
    assert hash(Paths("/p")) == hash(Paths("/p")) and len({Paths("/p"), Paths("/p"), Paths()}) == 2
    assert repr(Paths("/p")) == "Paths(prefix='/p')"
    entry = Entry(3, "ECS_CLUSTER", "prod")
    assert entry == Entry(3, "ECS_CLUSTER", "prod") and entry != Entry(4, "ECS_CLUSTER", "prod")
    assert entry != Entry(3, "ECS_CLUSTER", "dev") and entry != (3, "ECS_CLUSTER", "prod")
    assert len({entry, Entry(3, "ECS_CLUSTER", "prod"), Entry(3, "ECS_CLUSTER", "dev")}) == 2
    assert repr(entry) == "Entry(line=3, key='ECS_CLUSTER', value='prod')"
    for value, name in ((Paths("/p"), "prefix"), (entry, "value")):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(value, name, "x")


def test_config_repr_never_shows_values() -> None:
    cfg = Config(Paths("/p"), {"ECS_ENGINE_AUTH_DATA": "secret"}, instance={"A": "b"}, operator={})
    assert "secret" not in repr(cfg) and "1 variables" in repr(cfg) and "1 settings" in repr(cfg)
