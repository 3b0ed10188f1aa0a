#!/usr/bin/env bash
# Issue 23's GPU measurements, in one go, for a session that has a CUDA GPU (an H200 was the
# reference). Everything lands under $OUT (default: ./gpu_session_out):
#
#   session.log                 all that was printed, step by step
#   gpu.txt                     nvidia-smi, torch and NVML facts
#   modes.json, modes.run.json  benchmarks/modes_agreement.py: the table (ratios) and benchbench's run file
#   modes_latency_only.json     the launch-bound rows again with only the latency metric (diagnosis: do the
#                               other metrics of a benchmark slow its timing?)
#   modes_autotune.json         the max-autotune rows (compiling takes a minute each: last)
#   efficiency_energy.json      benchbench run suites/efficiency.yaml --metrics latency,energy (energy per sample)
#   cuda_tests.txt              the CUDA tests of the files issue 23 touched
#
#   OUT=/tmp/out bash benchmarks/gpu_session.sh        # about 8-9 minutes on an H200
#
# Each step has its own time limit and the steps run in order of importance, so a session cut
# short still brings back what finished. Needs torch with CUDA; nvidia-ml-py (pynvml) for the
# clock trace and energy: without it the run files say "not sampled: ..." and energy is refused
# (exit 2). Where pip cannot reach an index, put pynvml.py (the whole of nvidia-ml-py) in
# $PYNVML_DIR (default: ./.gpu_vendor) and it is used from there.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_session_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "environment"
PYNVML_DIR=${PYNVML_DIR:-$PWD/.gpu_vendor}
if ! python -c "import pynvml" 2>/dev/null; then
    pip install -q "nvidia-ml-py>=12.535" 2>/dev/null || true
    python -c "import pynvml" 2>/dev/null || { [ -f "$PYNVML_DIR/pynvml.py" ] && export PYTHONPATH="$PYNVML_DIR${PYTHONPATH:+:$PYTHONPATH}"; }
fi
# benchbench and its models: installed (entry points), or loaded by name from plugins/ through a link.
PLUGINS=()
if ! python -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'layers' for e in m.entry_points(group='benchbench')) else 1)" 2>/dev/null; then
    pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || true
fi
if ! python -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'layers' for e in m.entry_points(group='benchbench')) else 1)" 2>/dev/null; then
    SHIM=$(mktemp -d)
    ln -s "$PWD/plugins" "$SHIM/benchbench_plugins"
    export PYTHONPATH="$PWD:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    PLUGINS=(-p benchbench_plugins.layers -p benchbench_plugins.networks)
fi
{
    nvidia-smi
    nvidia-smi -q -d CLOCK,POWER,TEMPERATURE,PERFORMANCE
    python - <<'EOF'
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
} > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

step "modes agreement (every row but max-autotune), the suite's metrics"
timeout 300 python benchmarks/modes_agreement.py "${PLUGINS[@]}" --only '^(?!.*max_autotune)' --json "$OUT/modes.json"

step "the launch-bound rows with latency only (does anything measured before latency slow it?)"
timeout 90 python benchmarks/modes_agreement.py "${PLUGINS[@]}" --only '^inverted_residual(_compile|_bf16|_cuda_graphs)?$' \
    --metrics latency --json "$OUT/modes_latency_only.json"

step "energy of the efficiency suite"
timeout 120 benchbench run suites/efficiency.yaml "${PLUGINS[@]}" --metrics latency,energy --json "$OUT/efficiency_energy.json"

step "modes agreement: max-autotune rows"
timeout 240 python benchmarks/modes_agreement.py "${PLUGINS[@]}" --only 'max_autotune|^separable$|^inverted_residual$|^resnet18$' \
    --json "$OUT/modes_autotune.json"

step "CUDA tests"
timeout 150 python -m pytest -p no:cacheprovider -q -m cuda tests/test_gpustate.py tests/test_energy.py tests/test_ticker.py \
    tests/test_metrics.py tests/test_modes.py 2>&1 | tee "$OUT/cuda_tests.txt" | tail -15

step "done"
