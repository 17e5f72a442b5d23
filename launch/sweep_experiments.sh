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
# Ctrl-C or a SIGTERM stops the whole run: in local mode no further experiment starts; on a
# cluster each sweep's submitting process gets SIGTERM, prints its summary and exits (the jobs
# it submitted stay queued in SLURM; scancel stops them). Exit status 130 or 143 then.
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
command_for() {  # a simple command, so that `&` runs it as the child itself ($! is its pid)
    command=("$python" -m nasheur +experiment="$1" hydra/launcher="$launcher" "${overrides[@]}" -m)
}
stopped=""
if [[ $launcher == local ]]; then
    # the sweep runs in the foreground: Ctrl-C reaches it from the terminal (SLURM's SIGTERM
    # at a time limit reaches every process of the job), and it ends with 130 (143) after
    # its summary; no further experiment starts then
    trap 'stopped=130' INT
    trap 'stopped=143' TERM
    for e in "${experiments[@]}"; do
        command_for "$e"
        "${command[@]}"
        status[$e]=$?
        if [[ ${status[$e]} -eq 130 || ${status[$e]} -eq 143 ]]; then
            stopped=${status[$e]}
        fi
        [[ -n $stopped ]] && break
    done
else
    mkdir -p "$logs"
    declare -A pid=()
    stop() {  # pass the stop on to every sweep; each then ends with its summary
        stopped=$1
        trap '' INT TERM
        for p in "${pid[@]}"; do
            kill -TERM "$p" 2>/dev/null
        done
    }
    trap 'stop 130' INT
    trap 'stop 143' TERM
    for e in "${experiments[@]}"; do
        command_for "$e"
        "${command[@]}" >"$logs/$e.launch.log" 2>&1 &
        pid[$e]=$!
        echo "sweep $e: started, output in $logs/$e.launch.log"
    done
    for e in "${experiments[@]}"; do
        wait "${pid[$e]}"
        status[$e]=$?
        # a trapped signal ends `wait` early (status > 128) while the sweep still runs
        while [[ ${status[$e]} -gt 128 ]] && kill -0 "${pid[$e]}" 2>/dev/null; do
            wait "${pid[$e]}"
            status[$e]=$?
        done
    done
fi
rc=0
for e in "${experiments[@]}"; do
    if [[ -z ${status[$e]+set} ]]; then
        echo "sweep $e: not started (stopped); the same command runs it" >&2
    elif [[ ${status[$e]} -eq 0 ]]; then
        echo "sweep $e: done"
    elif [[ -n $stopped && ( ${status[$e]} -eq 130 || ${status[$e]} -eq 143 ) ]]; then
        echo "sweep $e: stopped; the same command resumes it" >&2
    else
        echo "sweep $e: failed (exit status ${status[$e]}); the same command retries it" >&2
        [[ $rc -eq 0 ]] && rc=${status[$e]}
    fi
done
if [[ -n $stopped ]]; then
    exit "$stopped"
fi
exit "$rc"
