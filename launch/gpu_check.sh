#!/usr/bin/env bash
# On a GPU node: the speed benchmark, then the tests that need CUDA, most telling first, each
# stage under its own time limit and writing its report into DIR as it ends (so a cut-off run
# still leaves the stages it finished). usage: bash launch/gpu_check.sh [DIR]  (default: gpu-check/)
#   1. NB201 at the paper's settings, the reference: one job (with the GPU's kernel
#      time per step), the plain step, and K = 1, 2, 4, 8 jobs sharing the GPU
#   2. NB201 evaluation replaying a CUDA graph per architecture
#   3. NB201 under bf16 autocast
#   4. make test-cuda's tests (device loader, CUDA-graph evaluation, the bench's kernel times,
#      a job with and without bf16)
#   5. the other spaces
# All logs go to DIR/bench.log and DIR/test-cuda.log, reports to DIR/bench-*.json.
set -uo pipefail
out=${1:-gpu-check}
py=${PYTHON:-python3}
steps=${STEPS:-200}
mkdir -p "$out"
"$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" ||
    { echo "gpu_check: torch sees no CUDA device here" >&2; exit 1; }
"$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
rc=0
stage() {  # stage LOG SECONDS COMMAND...: run under a time limit, append to LOG, keep going
    local log=$1 secs=$2
    shift 2
    echo "== $* (limit ${secs}s)" | tee -a "$log"
    timeout "$secs" "$@" 2>&1 | tee -a "$log" || { echo "== failed: rc ${PIPESTATUS[0]}" | tee -a "$log"; rc=1; }
}
bench=("$py" -m nasheur.bench --steps "$steps")
stage "$out/bench.log" 300 "${bench[@]}" --spaces nb201 --out "$out/bench-nb201.json"
stage "$out/bench.log" 120 "${bench[@]}" --spaces nb201 --eval-graphs --shared \
    --out "$out/bench-nb201-graphs.json"
stage "$out/bench.log" 120 "${bench[@]}" --spaces nb201 --bf16 --shared --eval-archs 5 \
    --out "$out/bench-nb201-bf16.json"
stage "$out/test-cuda.log" 240 "$py" -m pytest -q -m cuda -p no:cacheprovider
stage "$out/bench.log" 240 "${bench[@]}" --spaces embedded nb101 darts_nds --shared \
    --out "$out/bench-others.json"
exit $rc
