#!/usr/bin/env bash
# Run a command under a private CUDA MPS daemon, so that the processes it starts share the GPU
# with their kernels running side by side instead of taking turns (README, "Several jobs per
# GPU"). For K sweep points in one allocation on a site that does not grant MPS itself:
#
#   srun --gres=gpu:1 bash launch/with_mps.sh python -m nasheur +experiment=bn_ablation \
#       hydra/launcher=local_parallel hydra.launcher.jobs_at_once=4 -m
#
# (hydra.launcher.mps=true does the same from within the sweep, as does NASHEUR_SLURM_MPS=true
# for a packed SLURM task.)
# The daemon's pipe and log folders are private to this run (under TMPDIR) and the daemon is
# stopped when the command ends, however it ends; the command's exit status is returned. SIGTERM
# and SIGHUP sent to this script are handed to the command.
# Where nvidia-cuda-mps-control is missing, TMPDIR has no room for its folders, or the daemon
# does not start, the command runs without MPS, with a note on stderr. With MPS a CUDA error in
# one process can stop the others.
set -uo pipefail
[[ $# -ge 1 ]] || { echo "usage: with_mps.sh COMMAND [ARG...]" >&2; exit 2; }
control=${NASHEUR_MPS_CONTROL:-nvidia-cuda-mps-control}
if ! command -v "$control" >/dev/null; then
    echo "with_mps: no $control here; running without MPS" >&2
    exec "$@"
fi
# no private folder (a TMPDIR that is gone or full): no daemon, rather than one whose pipe is
# /pipe, made at the root and left there
if ! dir=$(mktemp -d "${TMPDIR:-/tmp}/nasheur-mps.XXXXXX") ||
    ! mkdir -p "$dir/pipe" "$dir/log"; then
    echo "with_mps: no private folder for the MPS daemon under ${TMPDIR:-/tmp}; running without MPS" >&2
    [[ -z ${dir:-} ]] || rm -rf "$dir"
    exec "$@"
fi
export CUDA_MPS_PIPE_DIRECTORY=$dir/pipe CUDA_MPS_LOG_DIRECTORY=$dir/log
if ! "$control" -d; then
    echo "with_mps: the MPS daemon did not start (logs: $CUDA_MPS_LOG_DIRECTORY); running without MPS" >&2
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    exec "$@"
fi
# the server numbers the GPUs it was started with from 0 (NVIDIA's MPS guide): a command that
# kept the task's numbers (GPU 2 of 0-3) would find no GPU and, with device=auto, stop
if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    IFS=, read -ra gpus <<< "$CUDA_VISIBLE_DEVICES"
    CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((${#gpus[@]} - 1)))
    export CUDA_VISIBLE_DEVICES
fi
stop() { echo quit | "$control" >/dev/null 2>&1; rm -rf "$dir"; }
trap stop EXIT
# The command runs in the background, so that a SIGTERM or SIGHUP sent to this script alone
# (kill PID, SLURM's --signal=B:TERM@SECONDS, scancel --batch) is handed on at once: bash holds
# its traps back while a foreground command runs, and the command would never hear of it.
# Bash makes background commands ignore SIGINT and SIGQUIT; the subshell gives them back. A
# Ctrl-C (a terminal's, srun's) reaches the command itself, so SIGINT is not handed on: a
# second one would make a sweep stop its jobs at once instead of letting them end.
( trap - INT QUIT; exec "$@" ) <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -HUP "$child" 2>/dev/null' HUP
trap ':' INT
while :; do
    wait "$child"
    status=$?  # the command's, or 128 + a signal that interrupted the wait
    kill -0 "$child" 2>/dev/null || break
done
if ((status > 128)); then  # the command may have ended while a signal's trap ran
    wait "$child" 2>/dev/null
    last=$?
    ((last == 127)) || status=$last  # 127: this bash reported the status already
fi
exit "$status"
