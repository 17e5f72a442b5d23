# Sourced by start_cluster.sh and stop_cluster.sh: the daemons are found by their pid files.

# the pid in a pid file if that process is alive and is the named program
live_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]] || return 1
    echo "$pid"
}
