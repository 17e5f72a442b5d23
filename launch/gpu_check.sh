#!/usr/bin/env bash
# On a GPU node: the speed benchmark and the tests that need CUDA, most telling first, each
# stage under its own time limit and appending to DIR as it ends (a cut-off run keeps the
# stages it finished). Needs nasheur installed (make install), as on any node; a node without
# a package index takes it from launch/wheelhouse.sh's wheels (its header says how).
#   usage: bash launch/gpu_check.sh [DIR [STAGE...]]    (default: gpu-check/, every stage)
# Stages (NB201 at the paper's settings, batch 128, unless named otherwise):
#   targets  the speed goal's three numbers, briefly (rates only): one job's training images/s
#            and evaluation seconds per architecture, then the aggregate of K = 1, 2, 4, 8
#            jobs per GPU under CUDA MPS (time-sliced where there is no MPS control)
#   bench    the job's step and evaluation, the plain step, K = 1, 2, 4, 8 jobs per GPU
#   eager    evaluation one batch at a time without CUDA graphs (the plain forward), and with
#            eval_speed=graphs (graphs, 4 streams, no packing), for comparison
#   nhwc     run.channels_last=true, and K = 8
#   bf16     run.bf16=true
#   tests    make test-cuda's tests
#   mps      K = 1, 2, 4, 8 jobs per GPU under CUDA MPS (launch/with_mps.sh; where
#            nvidia-cuda-mps-control exists)
#   others   embedded, nb101, darts_nds
# Logs: DIR/bench.log, DIR/test-cuda.log; reports: DIR/bench-<stage>.json.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-gpu-check}
shift || true
stages=${*:-bench eager nhwc bf16 tests mps others}
py=${PYTHON:-python3}
steps=${STEPS:-200}
known=" targets bench eager nhwc bf16 tests mps others "
for s in $stages; do  # a misspelt stage fails now, not after the stages before it
    [[ $known == *" $s "* ]] || { echo "gpu_check: no stage $s (stages:$known)" >&2; exit 2; }
done
"$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" ||
    { echo "gpu_check: torch sees no CUDA device here" >&2; exit 1; }
mkdir -p "$out"  # only once there is something to write there
"$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
rc=0
stage() {  # stage LOG SECONDS COMMAND...: run under a time limit, append to LOG, keep going
    local log=$1 secs=$2
    shift 2
    echo "== $(date +%T) $* (limit ${secs}s)" | tee -a "$log"
    timeout -k 30 "$secs" "$@" 2>&1 | tee -a "$log" || { echo "== failed: rc ${PIPESTATUS[0]}" | tee -a "$log"; rc=1; }
}
bench=("$py" -m nasheur.bench --steps "$steps")
quick=("${bench[@]}" --spaces nb201 --quick)
under_mps() {  # under_mps REPORT: K = 1, 2, 4, 8 jobs per GPU under MPS; status 1 without MPS
    command -v nvidia-cuda-mps-control >/dev/null || return 1
    stage "$out/bench.log" 240 bash "$here/with_mps.sh" "${quick[@]}" --eval-archs 2 \
        --shared 1 2 4 8 --out "$out/$1"
}
for s in $stages; do
    case $s in
    targets)
        stage "$out/bench.log" 150 "${quick[@]}" --out "$out/bench-targets.json"
        under_mps bench-targets-mps.json ||
            stage "$out/bench.log" 240 "${quick[@]}" --eval-archs 2 --shared 1 2 4 8 \
                --out "$out/bench-targets-shared.json"
        ;;
    bench) stage "$out/bench.log" 420 "${bench[@]}" --spaces nb201 --out "$out/bench-bench.json" ;;
    eager)
        stage "$out/bench.log" 120 "${quick[@]}" --no-eval-graphs --eval-pack 1 --shared \
            --out "$out/bench-eager.json"
        stage "$out/bench.log" 120 "${quick[@]}" --eval-graphs --eval-streams 4 --eval-pack 1 \
            --shared --out "$out/bench-graphs.json"
        ;;
    nhwc) stage "$out/bench.log" 180 "${quick[@]}" --channels-last --shared 8 --out "$out/bench-nhwc.json" ;;
    bf16) stage "$out/bench.log" 120 "${quick[@]}" --bf16 --shared --out "$out/bench-bf16.json" ;;
    tests) stage "$out/test-cuda.log" 300 "$py" -m pytest -q -m cuda -p no:cacheprovider "$here/../tests" ;;
    mps) under_mps bench-mps.json || echo "== mps: no nvidia-cuda-mps-control here" | tee -a "$out/bench.log" ;;
    others) stage "$out/bench.log" 420 "${bench[@]}" --spaces embedded nb101 darts_nds --shared \
        --out "$out/bench-others.json" ;;
    esac
done
exit $rc
