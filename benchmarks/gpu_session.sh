#!/usr/bin/env bash
# Issue 23's GPU measurements, in one go, for a session that has a CUDA GPU (an H200 was the
# reference). Everything lands under $OUT (default: ./gpu_session_out):
#
#   session.log                 all that was printed, step by step (nvidia-smi, torch and NVML facts first)
#   modes.json, modes.run.json  benchmarks/modes_agreement.py: the table (ratios) and benchbench's run file
#                               (with latency_gpu_trace, latency_throttled_samples)
#   modes_latency_only.json     the launch-bound rows again with only the latency metric (diagnosis: do the
#                               other metrics of a benchmark slow its timing?)
#   modes_autotune.json         the max-autotune rows (compiling takes a minute each: last)
#   efficiency_energy.json      benchbench run suites/efficiency.yaml --metrics latency,energy (energy per sample)
#   cuda_tests.txt              the CUDA tests of the files issue 23 touched
#
#   OUT=/tmp/out bash benchmarks/gpu_session.sh        # about 8-9 minutes on an H200
#
# Each step has its own time limit and the steps run in order of importance, so a session cut
# short still brings back what finished (7 files: the device tool brings back 8 at most).
# The machine has no network: what its image lacks (fvcore for the flops metric; nvidia-ml-py
# is there) comes as wheels in $VENDOR (default ./.gpu_vendor, git-ignored and carried), made
# here with
#   pip download --no-deps -d .gpu_vendor fvcore iopath yacs termcolor nvidia-ml-py
#   echo /.gpu_vendor/ >> .git/info/exclude          # then run(..., carry=[".gpu_vendor"])
# Without fvcore the modes rows run without the flops metric (said in the log).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_session_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}  # the device image's python3 holds torch
step "environment"
VENDOR=${VENDOR:-$PWD/.gpu_vendor}
for module in fvcore pynvml; do
    if ! "$PY" -c "import $module" 2>/dev/null && [ -d "$VENDOR" ]; then
        "$PY" -m pip install -q --no-index --find-links "$VENDOR" "$([ $module = pynvml ] && echo nvidia-ml-py || echo fvcore)" || true
    fi
done
MODES_METRICS=()
"$PY" -c "import fvcore" 2>/dev/null || { echo "no fvcore here: the modes rows run without flops"; MODES_METRICS=(--metrics params,latency,memory,numerics); }
# benchbench and its models: installed (entry points), or loaded by name from plugins/ through a link.
PLUGINS=()
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'layers' for e in m.entry_points(group='benchbench')) else 1)" 2>/dev/null; then
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || true
fi
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'layers' for e in m.entry_points(group='benchbench')) else 1)" 2>/dev/null; then
    SHIM=$(mktemp -d)
    ln -s "$PWD/plugins" "$SHIM/benchbench_plugins"
    export PYTHONPATH="$PWD:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    PLUGINS=(-p benchbench_plugins.layers -p benchbench_plugins.networks)
fi
nvidia-smi
nvidia-smi -q -d CLOCK,POWER,TEMPERATURE,PERFORMANCE
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0))
from benchbench import gpustate
gpu = gpustate.open_torch_gpu(torch.device("cuda"))
if isinstance(gpu, str):
    print("NVML:", gpu)
else:
    print("NVML:", gpu.name, "default SM clock", gpu.default_sm_clock_mhz, "MHz;", gpu.sample(),
          "; energy counter:", gpu.energy_counter() or "yes")
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("no triton: modes_agreement times by hand with CUDA events")
EOF

step "modes agreement (every row but max-autotune), the suite's metrics"
timeout 300 "$PY" benchmarks/modes_agreement.py "${PLUGINS[@]}" "${MODES_METRICS[@]}" --only '^(?!.*max_autotune)' \
    --json "$OUT/modes.json" --run-file "$OUT/modes.run.json"

step "the launch-bound rows with latency only (does anything measured before latency slow it?)"
timeout 90 "$PY" benchmarks/modes_agreement.py "${PLUGINS[@]}" --only '^inverted_residual(_compile|_bf16|_cuda_graphs)?$' \
    --metrics latency --json "$OUT/modes_latency_only.json"

step "energy of the efficiency suite"
timeout 120 "$PY" -m benchbench run suites/efficiency.yaml "${PLUGINS[@]}" --metrics latency,energy --json "$OUT/efficiency_energy.json"

step "modes agreement: max-autotune rows"
timeout 240 "$PY" benchmarks/modes_agreement.py "${PLUGINS[@]}" "${MODES_METRICS[@]}" --only 'max_autotune|^separable$|^inverted_residual$|^resnet18$' \
    --json "$OUT/modes_autotune.json"

step "CUDA tests"
timeout 150 "$PY" -m pytest -p no:cacheprovider -q -m cuda tests/test_gpustate.py tests/test_energy.py tests/test_ticker.py \
    tests/test_metrics.py tests/test_modes.py 2>&1 | tee "$OUT/cuda_tests.txt" | tail -15

step "done"
