"""Thin adapter over NVML through ``pynvml`` (PyPI package ``nvidia-ml-py``).

``pynvml`` is imported only inside ``read_facts``, so hosts without GPU
support never need the package. Every failure becomes one ``InitError``
line naming the step that failed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ecs_init.core.errors import InitError
from ecs_init.core.record import dataclass, field

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, List

PACKAGE = "nvidia-ml-py"


@dataclass(frozen=True)
class GPUFacts:
    driver_version: str
    gpu_ids: List[str] = field(default_factory=list)

    def to_json_obj(self) -> dict[str, Any]:
        """The shape the agent reads (SPEC §9)."""
        return {"DriverVersion": self.driver_version, "GPUIDs": list(self.gpu_ids)}


def import_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def _text(value: Any) -> str:
    """NVML strings arrive as bytes (old bindings) or str (newer ones)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00").strip()
    return str(value).strip()


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def read_facts(loader: Callable[[], ModuleType] = import_pynvml) -> GPUFacts:
    """Driver version and every GPU's UUID; raises InitError on any failure."""
    try:
        nv = loader()
    except ImportError as err:
        raise InitError(
            f"GPU support needs the NVML Python binding (pip package {PACKAGE}), which is not installed: "
            f"{_describe(err)}"
        ) from err
    try:
        nv.nvmlInit()
    except Exception as err:
        raise InitError(f"NVML initialisation failed (is the NVIDIA driver installed?): {_describe(err)}") from err
    step = "reading the driver version"
    try:
        driver = _text(nv.nvmlSystemGetDriverVersion())
        if not driver:
            raise ValueError("empty driver version")
        step = "counting GPUs"
        count = int(nv.nvmlDeviceGetCount())
        ids: list[str] = []
        for index in range(count):
            step = f"reading the UUID of GPU {index}"
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nv.nvmlDeviceGetUUID(handle))
            if not uuid:
                raise ValueError("empty UUID")
            ids.append(uuid)
    except Exception as err:
        raise InitError(f"NVML failed {step}: {_describe(err)}") from err
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass
    return GPUFacts(driver_version=driver, gpu_ids=ids)
