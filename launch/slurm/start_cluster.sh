#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests and for trying the launcher
# profile by hand. No systemd needed: every daemon is started here, in the background.
#
#   bash launch/slurm/start_cluster.sh     # install (Debian packages) if missing, then start
#   bash launch/slurm/stop_cluster.sh      # stop the daemons (packages and state are kept)
#
# Idempotent: what already runs with the same configuration is left alone, so a second run is
# a no-op that prints the same OK line. Needs root (it installs packages and writes /etc).
#
# What runs, and where:
#   munged       key /etc/munge/munge.key, socket in /run/munge
#   mariadbd     (mysqld_safe) datadir /var/lib/mysql, database slurm_acct_db, user slurm
#   slurmdbd     /etc/slurm/slurmdbd.conf (mode 600, owned by slurm)
#   slurmctld    /etc/slurm/slurm.conf, state in /var/spool/slurmctld
#   slurmd       the only node, named after `hostname -s`, spool in /var/spool/slurmd
# Logs go to /var/log/slurm/, pid files to /run/slurm/.
#
# Settings (environment): NASHEUR_SLURM_CLUSTER (cluster name, default nasheur),
# NASHEUR_SLURM_DEV_PARTITION (partition name, default debug), NASHEUR_SLURM_WAIT_S (how long
# to wait for the node, default 60).
set -euo pipefail

CLUSTER=${NASHEUR_SLURM_CLUSTER:-nasheur}
PARTITION=${NASHEUR_SLURM_DEV_PARTITION:-debug}
WAIT_S=${NASHEUR_SLURM_WAIT_S:-60}
if [[ ! $WAIT_S =~ ^[0-9]+$ ]]; then
    echo "start_cluster: NASHEUR_SLURM_WAIT_S=$WAIT_S: expected a whole number of seconds" >&2
    exit 2
fi

ETC=/etc/slurm
LOGS=/var/log/slurm
PIDS=/run/slurm
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
T0=$SECONDS

say() { printf 'start_cluster: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"

# shellcheck source=launch/slurm/pids.sh
. "$(dirname "${BASH_SOURCE[0]}")/pids.sh"

# wait (bounded) until a command succeeds
wait_for() {
    local seconds=$1
    shift
    local end=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.5
    done
}

# stop the program of a pid file (TERM, then KILL after 15 s)
stop_pidfile() {
    local pid
    pid=$(live_pid "$1" "$2") || return 0
    say "stopping $2 ($pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

# write $2 to $1 only if it differs; mode $3, owner $4; returns 0 when the file changed
install_file() {
    local path=$1 content=$2 mode=$3 owner=$4
    if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
        chmod "$mode" "$path"
        chown "$owner" "$path"
        return 1
    fi
    local tmp
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$path"
    say "wrote $path"
    return 0
}

# ------------------------------------------------------------------------------------------
# packages

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    # keep the packages' own init scripts from starting anything: everything starts below
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
        # a failed apt-get (set -e) must not leave every later install unable to start services
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if ((own_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi
id slurm >/dev/null 2>&1 || die "the Debian packages did not create the user slurm"

# ------------------------------------------------------------------------------------------
# the node's name must resolve (slurmd and slurmctld look it up)

NODE=$(hostname -s 2>/dev/null || true)
[[ -n $NODE ]] || NODE=localhost
if ! getent hosts "$NODE" >/dev/null; then
    say "adding $NODE to /etc/hosts"
    printf '127.0.0.1 %s\n' "$NODE" >>/etc/hosts
fi

install -d -m 755 -o slurm -g slurm "$LOGS" "$PIDS" /var/spool/slurmctld /var/lib/slurm
install -d -m 755 -o root -g root /var/spool/slurmd "$ETC"

# ------------------------------------------------------------------------------------------
# munge

install -d -m 700 -o munge -g munge /etc/munge /var/lib/munge
install -d -m 755 -o munge -g munge /run/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating the munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
munge_ok() { munge -n -t 10 | unmunge; }
if ! munge_ok >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 munge_ok || die "munged did not start (see /var/log/munge/munged.log)"
fi

# ------------------------------------------------------------------------------------------
# mariadb: the accounting database of slurmdbd

install -d -m 755 -o mysql -g mysql /run/mysqld
install_file /etc/mysql/mariadb.conf.d/90-slurmdbd.cnf "$(
    cat <<'EOF'
# written by launch/slurm/start_cluster.sh: what slurmdbd asks of its database
[mariadbd]
innodb_lock_wait_timeout = 900
innodb_buffer_pool_size = 256M
EOF
)" 644 root:root || true
if [[ ! -d /var/lib/mysql/mysql ]]; then
    say "initialising /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
db_ok() { mariadb-admin --protocol=socket ping; }
if ! db_ok >/dev/null 2>&1; then
    say "starting mariadb"
    nohup setsid /usr/bin/mysqld_safe >>"$LOGS/mysqld_safe.log" 2>&1 </dev/null &
    wait_for 60 db_ok || die "mariadb did not start (see $LOGS/mysqld_safe.log, /var/log/mysql)"
fi

# the slurm user's password lives in slurmdbd.conf only; made once, kept after
DBPASS=""
if [[ -f $ETC/slurmdbd.conf ]]; then
    DBPASS=$(sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf" | head -n1)
fi
[[ -n $DBPASS ]] || DBPASS=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
if ! MYSQL_PWD=$DBPASS mariadb --protocol=socket -u slurm -e 'USE slurm_acct_db' >/dev/null 2>&1; then
    say "creating the database slurm_acct_db and its user slurm"
    mariadb --protocol=socket -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
fi

# ------------------------------------------------------------------------------------------
# slurmdbd

dbd_changed=0
install_file "$ETC/slurmdbd.conf" "$(
    cat <<EOF
# written by launch/slurm/start_cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOGS/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
)" 600 slurm:slurm && dbd_changed=1

dbd_ok() { timeout 10 sacctmgr -n -P list cluster format=cluster; }
if ((dbd_changed)); then stop_pidfile "$PIDS/slurmdbd.pid" slurmdbd; fi
if ! live_pid "$PIDS/slurmdbd.pid" slurmdbd >/dev/null; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd
fi

# ------------------------------------------------------------------------------------------
# slurm.conf: this machine's CPUs and memory, as slurmd itself sees them

hw=$(slurmd -C 2>/dev/null | head -n1)
[[ $hw == NodeName=* ]] || die "slurmd -C printed no node line: $hw"
hw=${hw#NodeName=* }
hw=${hw%% UpTime=*}

ctld_changed=0
install_file "$ETC/slurm.conf" "$(
    cat <<EOF
# written by launch/slurm/start_cluster.sh: a one-node cluster for tests and trials
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
# no cgroups: the machine may be a container without them
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# accounting, so that sacct (submitit's job watcher) reports a job that was hard-killed
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
# requeue: submitit requeues a preempted or timed-out job with scontrol requeue
JobRequeue=1
ReturnToService=2
SlurmdTimeout=60
SlurmctldTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=30
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)" 644 root:root && ctld_changed=1
# No cgroup.conf: with task/none and proctrack/linuxproc slurmd loads no cgroup plugin, which
# is what a container without (writable) cgroups needs; Debian's 22.05 has no
# CgroupPlugin=disabled, and naming it stops slurmd. One left by an older version of this
# script goes.
if [[ -f $ETC/cgroup.conf ]] && grep -q 'start_cluster.sh' "$ETC/cgroup.conf"; then
    rm -f "$ETC/cgroup.conf"
fi

# the cluster must be known to slurmdbd before slurmctld registers
wait_for 60 dbd_ok || die "slurmdbd does not answer (see $LOGS/slurmdbd.log)"
if ! dbd_ok 2>/dev/null | grep -qx "$CLUSTER"; then
    say "registering the cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# ------------------------------------------------------------------------------------------
# slurmctld and slurmd

if ((ctld_changed)); then
    stop_pidfile "$PIDS/slurmd.pid" slurmd
    stop_pidfile "$PIDS/slurmctld.pid" slurmctld
fi
if ! live_pid "$PIDS/slurmctld.pid" slurmctld >/dev/null; then
    say "starting slurmctld"
    /usr/sbin/slurmctld
fi
wait_for 30 scontrol ping || die "slurmctld does not answer (see $LOGS/slurmctld.log)"
if ! live_pid "$PIDS/slurmd.pid" slurmd >/dev/null; then
    say "starting slurmd"
    /usr/sbin/slurmd -N "$NODE"
fi

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n1; }
node_up() { [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]]; }
end=$((SECONDS + WAIT_S))
resumed=0
until node_up; do
    state=$(node_state)
    # a node left down or drained by an earlier run comes back once slurmd answers
    if ((!resumed)) && [[ $state =~ ^(down|drain|drng)$ ]]; then
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        resumed=1
    fi
    ((SECONDS < end)) || die "node $NODE is '$state' after ${WAIT_S}s (see $LOGS/slurmd.log, $LOGS/slurmctld.log)"
    sleep 0.5
done
state=$(node_state)
if [[ $state == alloc ]]; then
    say "node $NODE is fully allocated: srun check skipped"
else
    timeout 60 srun -N1 -n1 -p "$PARTITION" -t 1 --immediate=30 true ||
        die "srun -N1 true failed (see $LOGS/slurmd.log)"
fi
cpus=$(sinfo -h -N -n "$NODE" -o %c | head -n1)
mem=$(sinfo -h -N -n "$NODE" -o %m | head -n1)
echo "OK: slurm cluster $CLUSTER: node $NODE ($state, $cpus CPUs, $mem MB), partition $PARTITION, accounting via slurmdbd ($((SECONDS - T0)) s)"
