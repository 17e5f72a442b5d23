#!/usr/bin/env bash
# Stop the one-node cluster of start_cluster.sh: slurmd, slurmctld, slurmdbd, mariadb, munged,
# each by the pid in its own pid file (nothing else of the same name is touched). Packages,
# configuration, the accounting database and SLURM's saved state are kept, so start_cluster.sh
# brings the same cluster back. Jobs still running are not cancelled first: `scancel` them
# before if they should not outlive slurmd. Idempotent: what is not running is skipped.
set -euo pipefail

PIDS=/run/slurm

say() { printf 'stop_cluster: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || {
    say "ERROR: run as root"
    exit 1
}

# shellcheck source=launch/slurm/pids.sh
. "$(dirname "${BASH_SOURCE[0]}")/pids.sh"

# TERM, then KILL after 20 s
stop() {
    local file=$1 name=$2 pid
    pid=$(live_pid "$file" "$name") || return 0
    say "stopping $name ($pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || {
            rm -f "$file"
            return 0
        }
        sleep 0.5
    done
    say "$name ($pid) did not stop: killing it"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$file"
}

stop "$PIDS/slurmd.pid" slurmd
stop "$PIDS/slurmctld.pid" slurmctld
stop "$PIDS/slurmdbd.pid" slurmdbd
# mysqld_safe restarts a mariadbd that dies, so ask the server itself to shut down
if command -v mariadb-admin >/dev/null && mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
    say "stopping mariadb"
    mariadb-admin --protocol=socket shutdown || true
fi
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
echo "OK: slurm cluster stopped"
