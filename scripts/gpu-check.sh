#!/usr/bin/env bash
# Device check for SPEC §9: run the real gpu.setup (NVML through pynvml) on a
# machine with an NVIDIA GPU, under a temporary path prefix, and compare the
# JSON it wrote with nvidia-smi. Run from the repository root:
#   scripts/gpu-check.sh
# pynvml: used if importable; otherwise installed into a temporary directory
# (never into the system Python) from $GPU_CHECK_WHEELS (a directory holding
# an nvidia-ml-py wheel, for offline machines) or else from the package index.
# Exit status: 0 when the file matches nvidia-smi, non-zero otherwise.
# (GPU_CHECK_DEV overrides /dev, only to rehearse this script with fakes.)
set -euo pipefail
dev=${GPU_CHECK_DEV:-/dev}

PY=${PYTHON:-python3}
tmp=$(mktemp -d /tmp/ecs-gpu-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pypath="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c 'import pynvml' 2>/dev/null; then
    echo "pynvml not importable; installing nvidia-ml-py into $tmp/site"
    if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
        "$PY" -m pip install -q --no-index --find-links "$GPU_CHECK_WHEELS" --target "$tmp/site" nvidia-ml-py
    else
        "$PY" -m pip install -q --target "$tmp/site" nvidia-ml-py
    fi
    pypath="$pypath:$tmp/site"
fi

echo "== $dev/nvidia*"
ls -d "$dev"/nvidia* || { echo "FAIL: no $dev/nvidia* device"; exit 1; }

echo "== gpu.setup (ECS_INIT_PATH_PREFIX=$tmp/root)"
mkdir -p "$tmp/root"
env ECS_INIT_PATH_PREFIX="$tmp/root" ECS_ENABLE_GPU_SUPPORT=true DEV="$dev" PYTHONPATH="$pypath" "$PY" - <<'EOF'
import logging, os, sys, time
from ecs_init.host import gpu
from ecs_init.core.config import Config
from ecs_init.host.context import HostContext
from ecs_init.core.errors import InitError

logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
start = time.monotonic()
try:
    gpu.setup(HostContext(cfg=Config.load()), dev_dir=os.environ["DEV"])
except InitError as err:
    print(f"FAIL: gpu.setup: {err}")
    sys.exit(1)
print(f"gpu.setup took {time.monotonic() - start:.3f}s")
EOF

info="$tmp/root/var/lib/ecs/gpu/nvidia-gpu-info.json"
echo "== $info (dir mode $(stat -c %a "$(dirname "$info")"), file mode $(stat -c %a "$info"))"
cat "$info"
echo "== nvidia-smi -L"
nvidia-smi -L
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1 | tr -d ' ')
echo "== nvidia-smi driver_version: $driver"

INFO="$info" DRIVER="$driver" UUIDS="$(nvidia-smi --query-gpu=uuid --format=csv,noheader)" "$PY" - <<'EOF'
import json, os, stat, sys
with open(os.environ["INFO"]) as fh:
    info = json.load(fh)
want_ids = [line.strip() for line in os.environ["UUIDS"].splitlines() if line.strip()]
problems = []
if list(info) != ["DriverVersion", "GPUIDs"]:
    problems.append(f"keys {list(info)}")
if info.get("DriverVersion") != os.environ["DRIVER"]:
    problems.append(f"driver {info.get('DriverVersion')!r} != nvidia-smi {os.environ['DRIVER']!r}")
if info.get("GPUIDs") != want_ids:
    problems.append(f"GPUIDs {info.get('GPUIDs')} != nvidia-smi {want_ids}")
if stat.S_IMODE(os.stat(os.path.dirname(os.environ["INFO"])).st_mode) != 0o700:
    problems.append("gpu dir is not mode 0700")
for p in problems:
    print("FAIL:", p)
print("OK: file matches nvidia-smi" if not problems else "FAIL")
sys.exit(1 if problems else 0)
EOF
