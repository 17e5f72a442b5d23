#!/usr/bin/env bash
# Run the sweeps of one paper table (the make targets `sweep-<table>` call this):
#
#   launch/sweep_experiments.sh LAUNCHER "ARGS" EXPERIMENT...
#
# LAUNCHER `local` runs the experiments one after the other on this machine. A cluster
# profile (`slurm`) starts them all at once, since each sweep waits for its own job array:
# their output goes to <runs>/sweeps/<experiment>.launch.log. Every experiment runs even if
# another fails; the exit status is that of the first that failed, and a list says which.
set -uo pipefail
launcher=$1
args=$2
shift 2
python=${PYTHON:-python3}
logs=${NASHEUR_RUNS:-runs}/sweeps
declare -A status=()
run() {  # ARGS is split into words as make would pass it
    # shellcheck disable=SC2086
    "$python" -m nasheur +experiment="$1" hydra/launcher="$launcher" $args -m
}
if [[ $launcher == local ]]; then
    for e in "$@"; do
        run "$e"
        status[$e]=$?
    done
else
    mkdir -p "$logs"
    declare -A pid=()
    for e in "$@"; do
        run "$e" >"$logs/$e.launch.log" 2>&1 &
        pid[$e]=$!
        echo "sweep $e: started, output in $logs/$e.launch.log"
    done
    for e in "$@"; do
        wait "${pid[$e]}"
        status[$e]=$?
    done
fi
rc=0
for e in "$@"; do
    if [[ ${status[$e]} -eq 0 ]]; then
        echo "sweep $e: done"
    else
        echo "sweep $e: failed (exit status ${status[$e]}); the same command retries it" >&2
        [[ $rc -eq 0 ]] && rc=${status[$e]}
    fi
done
exit "$rc"
