#!/usr/bin/env bash
# On a GPU node: the tests that need CUDA, then the speed benchmark, most telling first, each
# stage writing its log and report into DIR as it ends (so a cut-off run still leaves the
# stages it finished). usage: bash launch/gpu_check.sh [DIR]   (default: gpu-check/)
#   1. make test-cuda's tests (device loader, CUDA-graph evaluation, a job with and without bf16)
#   2. NB201 at the paper's settings, the reference: one job, the plain step, and
#      K = 1, 2, 4, 8 jobs sharing the GPU
#   3. NB201 evaluation replaying a CUDA graph per architecture
#   4. the other spaces
set -uo pipefail
out=${1:-gpu-check}
py=${PYTHON:-python3}
mkdir -p "$out"
"$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" ||
    { echo "gpu_check: torch sees no CUDA device here" >&2; exit 1; }
"$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
rc=0
"$py" -m pytest -q -m cuda -p no:cacheprovider 2>&1 | tee "$out/test-cuda.log" || rc=1
"$py" -m nasheur.bench --spaces nb201 --out "$out/bench-nb201.json" 2>&1 |
    tee "$out/bench.log" || rc=1
"$py" -m nasheur.bench --spaces nb201 --eval-graphs --shared --out "$out/bench-nb201-graphs.json" \
    2>&1 | tee -a "$out/bench.log" || rc=1
"$py" -m nasheur.bench --spaces embedded nb101 darts_nds --out "$out/bench-others.json" 2>&1 |
    tee -a "$out/bench.log" || rc=1
exit $rc
