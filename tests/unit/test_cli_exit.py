"""The entry point's quick exit (``cli.run``): exit handlers run, output is flushed, the exit code is kept,
a failed flush is exit 120, and a running thread gets the interpreter's usual exit (which waits for it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

import pytest
from engine_stub import Reply, StubEngine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ if env is None else env, PYTHONPATH=os.path.join(ROOT, "src"))
    return subprocess.run([sys.executable, "-c", code, *args], env=full, capture_output=True, text=True, timeout=60)


RUN = "from ecs_init.cli import run\nraise SystemExit(run())\n"  # sys.argv[1:] are the arguments after -c


def test_python_dash_m_goes_through_run_and_delivers_all_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecs_init", "--help"],
        env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from ecs_init import cli

    assert proc.stdout == cli.usage() + "\n"


def test_exit_handlers_run_and_the_exit_code_is_kept(tmp_path: object) -> None:
    mark = os.path.join(str(tmp_path), "ran")
    code = f"import atexit\natexit.register(lambda: open({mark!r}, 'w').write('ran'))\n" + RUN
    proc = python(code, "no-such-action")
    assert proc.returncode == 1 and "unknown action" in proc.stderr
    with open(mark) as fh:
        assert fh.read() == "ran"


def test_a_failed_flush_of_stdout_is_exit_120() -> None:
    code = "import sys\nsys.stdout = open('/dev/full', 'w')\n" + RUN
    proc = python(code, "--help")
    assert proc.returncode == 120, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_running_thread_gets_the_usual_exit_that_waits_for_it(tmp_path: object) -> None:
    mark = os.path.join(str(tmp_path), "thread")
    code = (
        "import threading, time\n"
        f"def late():\n    time.sleep(0.3)\n    open({mark!r}, 'w').write('done')\n"
        "threading.Thread(target=late).start()\n" + RUN
    )
    proc = python(code, "--help")
    assert proc.returncode == 0, proc.stderr
    with open(mark) as fh:
        assert fh.read() == "done"


@pytest.fixture
def stub() -> Iterator[StubEngine]:
    tmp = tempfile.mkdtemp(prefix="ecs-exit-", dir="/tmp")
    engine = StubEngine(os.path.join(tmp, "d.sock"))
    engine.routes["POST", "/containers/ecs-agent/stop"] = lambda r: Reply(204)
    try:
        yield engine.start()
    finally:
        engine.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_stop_leaves_every_log_line_in_the_file(tmp_path: object, stub: StubEngine) -> None:
    prefix = str(tmp_path)
    os.makedirs(os.path.join(prefix, "var/log/ecs"))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "DOCKER_HOST")}
    env.update(ECS_INIT_PATH_PREFIX=prefix, DOCKER_HOST=stub.host, ECS_LOGLEVEL="info")
    proc = python(RUN, "stop", env=env)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(prefix, "var/log/ecs/ecs-init.log")) as fh:
        lines = fh.read().splitlines()
    assert [line.split(" msg=")[1].split(" pid=")[0] for line in lines] == [
        '"stop (amazon-ecs-init ' + __import__("ecs_init").__version__ + ')"',
        '"agent container ecs-agent stopped"',
    ]
    assert lines == proc.stderr.splitlines()  # the console has the same lines
