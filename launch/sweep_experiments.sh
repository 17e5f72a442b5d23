#!/usr/bin/env bash
# Run the sweeps of one paper table (the make targets `sweep-<table>` call this):
#
#   launch/sweep_experiments.sh LAUNCHER "EXPERIMENT..." [OVERRIDE...]
#
# The overrides come as separate words, as the shell split them (quotes and all), e.g.
# 'hydra.launcher.setup=["module load cuda/12.4"]' stays one override.
#
# LAUNCHER `local` or `local_parallel` runs the experiments one after the other on this
# machine (local_parallel's jobs_at_once jobs side by side within each). A cluster profile
# (`slurm`) starts them all at once, since each sweep waits for its own job array:
# their output is appended to <runs>/sweeps/<experiment>.launch.log. Every experiment runs even if
# another fails; the exit status is that of the first that failed, and a list says which.
# A dry run (hydra.sweeper.dry_run=true) prints each experiment's plan here, one after
# another, whatever the launcher, and writes no launch log.
# Ctrl-C or a SIGTERM to this script (or to `make`) stops the whole run: each running sweep
# gets the same signal, prints its summary and exits (the jobs it submitted stay queued in
# SLURM; scancel stops them), and no further experiment starts. Exit status 130 or 143 then.
# A job that a sweep of another experiment completed earlier is copied, not trained again
# (nasheur.reuse); of sweeps started together, the first to claim a job they share (the
# baseline) trains it, and the others wait for it and copy it.
set -uo pipefail
# each sweep in a process group of its own: a Ctrl-C reaches this script alone, which passes
# it on as SIGINT (a sweep started with `&` without this would ignore SIGINT)
set -m
usage() {
    echo "usage: $0 LAUNCHER \"EXPERIMENT...\" [OVERRIDE...]" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
launcher=$1
read -r -a experiments <<<"$2"
# an empty list (a blank make variable) is a mistake, not a run of nothing that succeeds
((${#experiments[@]})) || usage
# one sweep per experiment: a name given twice would launch it twice (on a cluster at once,
# the second's wait losing the first's)
declare -A seen=()
unique=()
for e in "${experiments[@]}"; do
    [[ -n ${seen[$e]:-} ]] || unique+=("$e")
    seen[$e]=1
done
experiments=("${unique[@]}")
shift 2
overrides=("$@")
python=${PYTHON:-python3}
# the runs folder as nasheur reads it (nasheur.config.runs_root): spaces around it dropped,
# a leading ~ or ~user (quoted in site.env, where no shell expands it) a home folder
logs=${NASHEUR_RUNS-}
logs=${logs#"${logs%%[![:space:]]*}"}
logs=${logs%"${logs##*[![:space:]]}"}
logs=${logs:-runs}
if [[ $logs == "~"* ]]; then
    head=${logs%%/*}
    user=${head#\~}
    if [[ -z $user ]]; then  # $HOME, else (unset) this user's own entry, as Python's
        home=${HOME-$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)}
    else
        # by name only, as Python's getpwnam: getent takes a number for a uid (~0: root's)
        entry=$(getent passwd "$user" 2>/dev/null)
        home=
        if [[ -n $entry && ($user == *[!0-9]* || ${entry%%:*} == "$user") ]]; then
            home=$(cut -d: -f6 <<<"$entry")
        fi
    fi
    [[ -z $home ]] || logs=$home${logs#"$head"}
fi
logs=$logs/sweeps
declare -A status=() pid=()
stopped=""
stop() {  # $1: the signal, $2: this script's exit status; every sweep still there gets $1
    stopped=$2
    trap '' INT TERM HUP  # once: a second Ctrl-C would cut a sweep's summary short
    # the shell's own list of its live children: a sweep that ended is no pid to signal
    local p running stopped_ones  # p: not the caller's (await's, when a trap runs in it)
    running=$(jobs -pr)
    stopped_ones=$(jobs -ps)
    for p in $running $stopped_ones; do
        kill -"$1" "$p" 2>/dev/null
    done
    for p in $stopped_ones; do  # a stopped sweep handles the signal once it runs again
        kill -CONT "$p" 2>/dev/null
    done
}
trap 'stop INT 130' INT
trap 'stop TERM 143' TERM
trap 'stop TERM 129' HUP  # the terminal closed: each sweep stops as for a `kill`
start() {  # `start E &`: the sweep of experiment E, exec-ed by the subshell ($! is its pid)
    # (the odd expansion: bash before 4.4 calls an empty array unbound under `set -u`)
    exec "$python" -m nasheur +experiment="$1" hydra/launcher="$launcher" \
        ${overrides[@]+"${overrides[@]}"} -m
}
await() {  # the exit status of experiment $1's sweep, once it ended
    local p=${pid[$1]}
    while :; do
        wait "$p"
        status[$1]=$?
        kill -0 "$p" 2>/dev/null || break  # it ended (and `wait` reaped it)
        # still there: a trapped signal ended `wait` early, or the sweep is stopped (a
        # `kill -STOP`, or output under `stty tostop`), when `wait` returns at once
        if [[ " $(jobs -ps | tr '\n' ' ') " == *" $p "* ]]; then
            sleep 1
        fi
    done
    unset "pid[$1]"
}
dry=
for o in ${overrides[@]+"${overrides[@]}"}; do
    o=${o#"${o%%[!+]*}"}  # with its + or ++ too
    [[ ${o%%=*} == hydra.sweeper.dry_run ]] || continue
    # the values the sweeper's bool field reads as true, in any case (OmegaConf's), the last wins
    case ${o#*=} in
    [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Yy] | [Oo][Nn] | 1) dry=1 ;;
    *) dry= ;;
    esac
done
# a dry run prints each plan here, one after another, whatever the launcher: no launch log;
# so do the profiles that run on this machine (sweeps at once would share its one GPU)
if [[ $launcher == local || $launcher == local_parallel || -n $dry ]]; then
    for e in "${experiments[@]}"; do
        [[ -n $stopped ]] && break
        start "$e" &
        pid[$e]=$!
        await "$e"
        # a sweep stopped on its own (SLURM's SIGTERM at a time limit reaches every process)
        if [[ ${status[$e]} -eq 130 || ${status[$e]} -eq 143 ]]; then
            stopped=${stopped:-${status[$e]}}
        fi
    done
else
    mkdir -p -- "$logs"
    for e in "${experiments[@]}"; do
        [[ -n $stopped ]] && break
        # appended: an earlier launch's summary stays, below a line dating this one
        printf '==== %s: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "launch of sweep $e" \
            >>"$logs/$e.launch.log"
        start "$e" >>"$logs/$e.launch.log" 2>&1 &
        pid[$e]=$!
        echo "sweep $e: started, output in $logs/$e.launch.log"
    done
    for e in "${experiments[@]}"; do
        [[ -n ${pid[$e]+set} ]] && await "$e"
    done
fi
rc=0
done_word=done
[[ -n $dry ]] && done_word="planned (dry run: nothing ran)"
for e in "${experiments[@]}"; do
    if [[ -z ${status[$e]+set} ]]; then
        echo "sweep $e: not started (stopped); the same command runs it" >&2
    elif [[ ${status[$e]} -eq 0 ]]; then
        echo "sweep $e: $done_word"
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
