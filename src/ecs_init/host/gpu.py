"""NVIDIA GPU facts for the agent (SPEC §9).

With ``ECS_ENABLE_GPU_SUPPORT=true`` pre-start logs the NVIDIA EULA notice,
looks for ``/dev/nvidia*`` and, when there is any, writes the driver version
and every GPU's UUID (read through NVML) to
``/var/lib/ecs/gpu/nvidia-gpu-info.json``. An NVML failure fails pre-start.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from types import ModuleType

from ecs_init.core import settings
from ecs_init.core.errors import InitError
from ecs_init.core.fsutil import atomic_write
from ecs_init.host import nvml
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable

log = logging.getLogger(__name__)

EULA_NOTICE = (
    "By using the GPU Optimized AMI, you agree to the NVIDIA Cloud End User License Agreement "
    "https://s3.amazonaws.com/EULA/NVidiaEULAforAWS.pdf"
)
# SPEC §3: an instance-file ECS_ENABLE_GPU_SUPPORT=true is dropped when no
# device appears within this many checks, this far apart.
DEVICE_CHECKS = 10
DEVICE_CHECK_INTERVAL = 3.0


def devices_present(dev_dir: str = "/dev") -> bool:
    """True when any /dev/nvidia* device exists."""
    return bool(glob.glob(os.path.join(glob.escape(dev_dir), "nvidia*")))


def wait_for_devices(
    checks: int = DEVICE_CHECKS,
    interval: float = DEVICE_CHECK_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    dev_dir: str = "/dev",
) -> bool:
    """Check up to ``checks`` times, ``interval`` seconds apart; True as soon
    as a device appears. No sleep after the last check."""
    for attempt in range(max(checks, 1)):
        if attempt:
            sleep(interval)
        if devices_present(dev_dir):
            return True
    return False


def write_info(path: str, facts: nvml.GPUFacts) -> None:
    """Write the JSON file; its directory is created (or tightened) to 0700."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        atomic_write(path, json.dumps(facts.to_json_obj()) + "\n", mode=0o600)
    except OSError as err:
        raise InitError(f"cannot write GPU info {path}: {err.strerror or err}") from err


def setup(
    ctx: HostContext,
    dev_dir: str = "/dev",
    nvml_loader: Callable[[], ModuleType] = nvml.import_pynvml,
) -> None:
    """When ECS_ENABLE_GPU_SUPPORT is true: EULA notice, NVML facts to the JSON file."""
    if not ctx.cfg.flag(settings.ENABLE_GPU_SUPPORT):
        log.debug("GPU support is off")
        return
    log.info(EULA_NOTICE)
    if not devices_present(dev_dir):
        log.info("GPU support is on but there is no NVIDIA device (%s/nvidia*); no GPU info written", dev_dir)
        return
    facts = nvml.read_facts(nvml_loader)
    path = ctx.paths.gpu_info
    write_info(path, facts)
    log.info(
        "GPU info written to %s: driver %s, %d GPU(s)",
        path,
        facts.driver_version,
        len(facts.gpu_ids),
    )
