#!/usr/bin/env bash
# One prepared GPU check (issue 21): on one CUDA GPU, with no network, every GPU figure
# the book claims, correctness before speed, in one report.
#
#   bash benchmarks/gpu_wheels.sh          # where there is a network: fills .whl/
#   bash benchmarks/gpu.sh                 # on the GPU machine
#   bash benchmarks/gpu.sh --dry-run       # anywhere: every step at tiny sizes (CI)
#
# Options: --out DIR (default $OUT/gpu-check, else artifacts/gpu-check/<UTC time>),
# --steps "attention training" (a subset), --dry-run. Environment: PYTHON (default
# python3: the machine's interpreter, with its own PyTorch), LLMFS_DATA (default
# .whl/data, which gpu_wheels.sh fills, else ../shared/data), GPU_WHEELS (.whl),
# GPU_CHECK_BUDGET (seconds for all the steps, 480).
#
# What it does: puts this checkout on PYTHONPATH; installs the modules the check needs
# and the interpreter lacks from the wheels in .whl/ (into .whl/site, never into the
# interpreter's own site-packages); runs each step of benchmarks/gpu_check.py in its
# own process under its own time limit, so that a step that fails, hangs or breaks
# the CUDA context reports why and the rest still run; then writes gpu-check.json and
# gpu-check.md into the folder and prints the Markdown.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
DRY=""
STEPS="environment attention training adamw generation"
OUTDIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY="--dry-run" ;;
        --out) OUTDIR=$2; shift ;;
        --steps) STEPS=$2; shift ;;
        *) echo "gpu.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUTDIR" ]; then
    if [ -n "${OUT:-}" ]; then OUTDIR=$OUT/gpu-check
    else OUTDIR=$ROOT/artifacts/gpu-check/$(date -u +%Y%m%d-%H%M%S); fi
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WHEELS=${GPU_WHEELS:-$ROOT/.whl}
export PYTHONPATH="$ROOT:$WHEELS/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${LLMFS_DATA:-}" ]; then
    for d in "$WHEELS/data" "$ROOT/../shared/data"; do
        if [ -d "$d" ]; then LLMFS_DATA=$(cd "$d" && pwd); break; fi
    done
fi
export LLMFS_DATA
# No network: never wait for the hub. Artifacts (tokenizer, shards) in a scratch folder.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export LLMFS_HOME=${LLMFS_HOME:-$(mktemp -d -t llmfs-gpu-check.XXXXXX)}
export TOKENIZERS_PARALLELISM=false
if [ -n "$DRY" ]; then  # torch.compile through dynamo and AOT autograd, without the
    # minute of C++ code generation inductor takes on a CPU (a GPU run uses inductor)
    : "${TORCH_COMPILE_OVERRIDE_BACKENDS:=>=0:aot_eager}"
    export TORCH_COMPILE_OVERRIDE_BACKENDS
fi
echo "gpu-check: report in $OUTDIR; data ${LLMFS_DATA:-<none>}; python $("$PY" -V 2>&1)"

"$PY" benchmarks/gpu_check.py install --out "$OUTDIR" --wheels "$WHEELS"

# Each step's own limit, and one for the whole run (GPU_CHECK_BUDGET seconds, 480 by
# default: the 8 minutes issue 21 allows, inside a 10-minute command limit). A step
# gets what is left of the budget when that is less than its own limit.
BUDGET=${GPU_CHECK_BUDGET:-480}
deadline=$(( $(date +%s) + BUDGET ))
limit() {
    local own
    case "$1" in
        environment) own=45 ;; attention) own=130 ;; training) own=200 ;;
        adamw) own=45 ;; generation) own=110 ;; *) own=120 ;;
    esac
    local left=$(( deadline - $(date +%s) - 10 ))
    echo $(( left < own ? left : own ))
}
for step in $STEPS; do
    seconds=$(limit "$step")
    if [ "$seconds" -lt 10 ]; then
        echo "gpu-check: $step not run: the budget of $BUDGET s is spent"
        echo "budget" > "$OUTDIR/$step.rc"
        continue
    fi
    echo "gpu-check: $step (limit $seconds s)"
    timeout --kill-after=5 "$seconds" \
        "$PY" benchmarks/gpu_check.py "$step" --out "$OUTDIR" $DRY \
        > "$OUTDIR/$step.log" 2>&1
    rc=$?
    echo "$rc" > "$OUTDIR/$step.rc"
    tail -n 25 "$OUTDIR/$step.log"
    if [ "$step" = environment ] && [ "$rc" = 3 ]; then
        echo "gpu-check: no CUDA device here; run with --dry-run to exercise the steps"
        "$PY" benchmarks/gpu_check.py report "$OUTDIR" > /dev/null
        exit 3
    fi
done
"$PY" benchmarks/gpu_check.py report "$OUTDIR"
echo "gpu-check: $OUTDIR/gpu-check.md and gpu-check.json"
