"""GPU facts (SPEC §9) with a fake NVML module in place of pynvml."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import types
from typing import Any

import pytest

from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths
from ecs_init.host import gpu, nvml
from ecs_init.host.context import HostContext


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError (a plain Exception subclass)."""


def fake_pynvml(
    driver: Any = b"535.104.05",
    uuids: tuple[Any, ...] = (b"GPU-11111111-2222-3333-4444-555555555555",),
    init_error: Exception | None = None,
    uuid_error_at: int | None = None,
) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    mod.calls = []  # type: ignore[attr-defined]

    def record(name: str) -> None:
        mod.calls.append(name)  # type: ignore[attr-defined]

    def nvmlInit() -> None:
        record("init")
        if init_error is not None:
            raise init_error

    def nvmlShutdown() -> None:
        record("shutdown")

    def nvmlSystemGetDriverVersion() -> Any:
        record("driver")
        return driver

    def nvmlDeviceGetCount() -> int:
        record("count")
        return len(uuids)

    def nvmlDeviceGetHandleByIndex(index: int) -> tuple[str, int]:
        record(f"handle{index}")
        return ("handle", index)

    def nvmlDeviceGetUUID(handle: tuple[str, int]) -> Any:
        record(f"uuid{handle[1]}")
        if uuid_error_at == handle[1]:
            raise FakeNVMLError("GPU is lost")
        return uuids[handle[1]]

    for fn in (
        nvmlInit,
        nvmlShutdown,
        nvmlSystemGetDriverVersion,
        nvmlDeviceGetCount,
        nvmlDeviceGetHandleByIndex,
        nvmlDeviceGetUUID,
    ):
        setattr(mod, fn.__name__, fn)
    return mod


def make_ctx(prefix: str, env: dict[str, str] | None = None, instance: dict[str, str] | None = None) -> HostContext:
    cfg = Config(paths=Paths(prefix=prefix), environ=dict(env or {}), instance=dict(instance or {}))
    return HostContext(cfg=cfg)


ON = {"ECS_ENABLE_GPU_SUPPORT": "true"}


@pytest.fixture
def dev_dir(tmp_path) -> str:  # type: ignore[no-untyped-def]
    d = tmp_path / "dev"
    d.mkdir()
    for name in ("null", "nvidia0", "nvidiactl", "nvidia-uvm"):
        (d / name).write_text("")
    return str(d)


@pytest.fixture
def empty_dev(tmp_path) -> str:  # type: ignore[no-untyped-def]
    d = tmp_path / "emptydev"
    d.mkdir()
    (d / "null").write_text("")
    (d / "nvme0n1").write_text("")  # similar name, not an NVIDIA device
    return str(d)


def read_info(prefix: str) -> str:
    with open(os.path.join(prefix, "var", "lib", "ecs", "gpu", "nvidia-gpu-info.json")) as fh:
        return fh.read()


def never_called() -> types.ModuleType:
    raise AssertionError("NVML must not be loaded")


# ------------------------------------------------------------ devices


def test_devices_present(dev_dir: str, empty_dev: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert gpu.devices_present(dev_dir)
    assert not gpu.devices_present(empty_dev)
    assert not gpu.devices_present(str(tmp_path / "missing"))


def test_wait_for_devices_immediate(dev_dir: str) -> None:
    sleeps: list[float] = []
    assert gpu.wait_for_devices(sleep=sleeps.append, dev_dir=dev_dir)
    assert sleeps == []


def test_wait_for_devices_never(empty_dev: str) -> None:
    sleeps: list[float] = []
    assert not gpu.wait_for_devices(sleep=sleeps.append, dev_dir=empty_dev)
    assert sleeps == [3.0] * 9  # 10 checks, 3 s apart


def test_wait_for_devices_appears_late(empty_dev: str) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 4:
            with open(os.path.join(empty_dev, "nvidia0"), "w"):
                pass

    assert gpu.wait_for_devices(checks=10, interval=3.0, sleep=sleep, dev_dir=empty_dev)
    assert sleeps == [3.0] * 4


# ------------------------------------------------------------ setup


def test_setup_writes_info_bytes_from_old_bindings(prefix: str, dev_dir: str, caplog) -> None:  # type: ignore[no-untyped-def]
    fake = fake_pynvml()
    caplog.set_level(logging.INFO, logger="ecs_init.host.gpu")
    gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake)
    assert read_info(prefix) == (
        '{"DriverVersion": "535.104.05", "GPUIDs": ["GPU-11111111-2222-3333-4444-555555555555"]}\n'
    )
    gpu_dir = os.path.join(prefix, "var", "lib", "ecs", "gpu")
    assert stat.S_IMODE(os.stat(gpu_dir).st_mode) == 0o700
    assert os.listdir(gpu_dir) == ["nvidia-gpu-info.json"]
    assert fake.calls == ["init", "driver", "count", "handle0", "uuid0", "shutdown"]  # type: ignore[attr-defined]
    assert gpu.EULA_NOTICE in caplog.messages
    assert gpu.EULA_NOTICE == (
        "By using the GPU Optimized AMI, you agree to the NVIDIA Cloud End User License Agreement "
        "https://s3.amazonaws.com/EULA/NVidiaEULAforAWS.pdf"
    )


def test_setup_str_driver_and_several_gpus(prefix: str, dev_dir: str) -> None:
    uuids = ("GPU-aaaa", "GPU-bbbb", b"GPU-cccc", "GPU-dddd")
    fake = fake_pynvml(driver="550.54.15", uuids=uuids)
    gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake)
    info = json.loads(read_info(prefix))
    assert info == {"DriverVersion": "550.54.15", "GPUIDs": ["GPU-aaaa", "GPU-bbbb", "GPU-cccc", "GPU-dddd"]}
    assert list(info) == ["DriverVersion", "GPUIDs"]


def test_setup_tightens_existing_dir_and_replaces_file(prefix: str, dev_dir: str) -> None:
    gpu_dir = os.path.join(prefix, "var", "lib", "ecs", "gpu")
    os.makedirs(gpu_dir, mode=0o755)
    os.chmod(gpu_dir, 0o755)
    with open(os.path.join(gpu_dir, "nvidia-gpu-info.json"), "w") as fh:
        fh.write('{"DriverVersion": "old", "GPUIDs": ["GPU-old"]}')
    gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake_pynvml(driver="1.2.3", uuids=("GPU-n",)))
    assert json.loads(read_info(prefix)) == {"DriverVersion": "1.2.3", "GPUIDs": ["GPU-n"]}
    assert stat.S_IMODE(os.stat(gpu_dir).st_mode) == 0o700


def test_setup_through_real_import_of_pynvml(prefix: str, dev_dir: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The default loader imports ``pynvml``; a module in sys.modules is what it gets."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(driver=b"470.1", uuids=(b"GPU-x", b"GPU-y")))
    gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir)
    assert json.loads(read_info(prefix)) == {"DriverVersion": "470.1", "GPUIDs": ["GPU-x", "GPU-y"]}


def test_setup_flag_from_instance_config(prefix: str, dev_dir: str) -> None:
    ctx = make_ctx(prefix, instance={"ECS_ENABLE_GPU_SUPPORT": "true"})
    gpu.setup(ctx, dev_dir=dev_dir, nvml_loader=lambda: fake_pynvml())
    assert "GPU-11111111" in read_info(prefix)


def test_setup_nvml_init_error_fails(prefix: str, dev_dir: str) -> None:
    fake = fake_pynvml(init_error=FakeNVMLError("Driver Not Loaded"))
    with pytest.raises(InitError) as exc:
        gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "NVML initialisation failed" in msg
    assert "Driver Not Loaded" in msg
    assert fake.calls == ["init"]  # type: ignore[attr-defined]
    assert not os.path.exists(os.path.join(prefix, "var", "lib", "ecs", "gpu", "nvidia-gpu-info.json"))


def test_setup_nvml_error_midway_fails_and_shuts_down(prefix: str, dev_dir: str) -> None:
    fake = fake_pynvml(uuids=("GPU-a", "GPU-b"), uuid_error_at=1)
    with pytest.raises(InitError, match="NVML failed reading the UUID of GPU 1: FakeNVMLError: GPU is lost"):
        gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake)
    assert fake.calls[-1] == "shutdown"  # type: ignore[attr-defined]
    assert not os.path.exists(os.path.join(prefix, "var", "lib", "ecs", "gpu", "nvidia-gpu-info.json"))


@pytest.mark.parametrize("driver", [b"", "  ", b"\x00"])
def test_setup_empty_driver_version_fails(prefix: str, dev_dir: str, driver: Any) -> None:
    with pytest.raises(InitError, match="driver version"):
        gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake_pynvml(driver=driver))


def test_setup_pynvml_not_installed(prefix: str, dev_dir: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(InitError) as exc:
        gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir)
    assert "nvidia-ml-py" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_setup_no_devices_does_nothing_more(prefix: str, empty_dev: str, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="ecs_init.host.gpu")
    gpu.setup(make_ctx(prefix, ON), dev_dir=empty_dev, nvml_loader=never_called)
    assert gpu.EULA_NOTICE in caplog.messages  # the notice comes before the device check
    assert any("no NVIDIA device" in m for m in caplog.messages)
    assert not os.path.exists(os.path.join(prefix, "var", "lib", "ecs", "gpu"))


@pytest.mark.parametrize("env", [{}, {"ECS_ENABLE_GPU_SUPPORT": "false"}, {"ECS_ENABLE_GPU_SUPPORT": "yes"}])
def test_setup_flag_off(prefix: str, dev_dir: str, env: dict[str, str], caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="ecs_init.host.gpu")
    gpu.setup(make_ctx(prefix, env), dev_dir=dev_dir, nvml_loader=never_called)
    assert gpu.EULA_NOTICE not in caplog.messages
    assert not os.path.exists(os.path.join(prefix, "var", "lib", "ecs", "gpu"))


def test_setup_write_failure_is_init_error(prefix: str, dev_dir: str) -> None:
    # a regular file where /var/lib/ecs/gpu should be
    with open(os.path.join(prefix, "var", "lib", "ecs", "gpu"), "w") as fh:
        fh.write("x")
    with pytest.raises(InitError, match="cannot write GPU info"):
        gpu.setup(make_ctx(prefix, ON), dev_dir=dev_dir, nvml_loader=lambda: fake_pynvml())


def test_facts_json_shape() -> None:
    facts = nvml.GPUFacts("1.0", ["GPU-a"])
    assert facts.to_json_obj() == {"DriverVersion": "1.0", "GPUIDs": ["GPU-a"]}


def test_real_pynvml_binding() -> None:
    """With the real nvidia-ml-py installed: facts on a GPU host, one clear
    InitError elsewhere (no driver library here)."""
    pytest.importorskip("pynvml")
    if gpu.devices_present():
        facts = nvml.read_facts()
        assert facts.driver_version
        assert facts.gpu_ids and all(u.startswith("GPU-") for u in facts.gpu_ids)
    else:
        with pytest.raises(InitError, match="NVML initialisation failed") as exc:
            nvml.read_facts()
        assert "\n" not in str(exc.value)
