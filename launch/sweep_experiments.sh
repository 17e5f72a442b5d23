#!/usr/bin/env bash
# Run the sweeps of one paper table (the make targets `sweep-<table>` call this):
#
#   launch/sweep_experiments.sh LAUNCHER "EXPERIMENT..." [OVERRIDE...]
#
# The overrides come as separate words, as the shell split them (quotes and all), e.g.
# 'hydra.launcher.setup=["module load cuda/12.4"]' stays one override.
#
# LAUNCHER `local` runs the experiments one after the other on this machine. A cluster
# profile (`slurm`) starts them all at once, since each sweep waits for its own job array:
# their output goes to <runs>/sweeps/<experiment>.launch.log. Every experiment runs even if
# another fails; the exit status is that of the first that failed, and a list says which.
# A job that a sweep of another experiment completed earlier is copied, not trained again
# (nasheur.reuse); sweeps started together each train the jobs they share (the baseline).
set -uo pipefail
launcher=$1
read -r -a experiments <<<"$2"
shift 2
overrides=("$@")
python=${PYTHON:-python3}
logs=${NASHEUR_RUNS:-runs}/sweeps
declare -A status=()
run() {
    "$python" -m nasheur +experiment="$1" hydra/launcher="$launcher" "${overrides[@]}" -m
}
if [[ $launcher == local ]]; then
    for e in "${experiments[@]}"; do
        run "$e"
        status[$e]=$?
    done
else
    mkdir -p "$logs"
    declare -A pid=()
    for e in "${experiments[@]}"; do
        run "$e" >"$logs/$e.launch.log" 2>&1 &
        pid[$e]=$!
        echo "sweep $e: started, output in $logs/$e.launch.log"
    done
    for e in "${experiments[@]}"; do
        wait "${pid[$e]}"
        status[$e]=$?
    done
fi
rc=0
for e in "${experiments[@]}"; do
    if [[ ${status[$e]} -eq 0 ]]; then
        echo "sweep $e: done"
    else
        echo "sweep $e: failed (exit status ${status[$e]}); the same command retries it" >&2
        [[ $rc -eq 0 ]] && rc=${status[$e]}
    fi
done
exit "$rc"
