#!/bin/sh
# storage-role.sh NODE promote|demote [DIR]
#
# The storage role of NODE, simulated: what a real pair does in these two places is in
# the comments (DRBD + NFS as the example). Called by keepalive-d's notify commands
# (examples/storage-failover/node-a.yaml), one at a time per VRRP instance, in transition
# order.
#
# promote: appends "NODE promote SEQ UPTIME" to DIR/record, then writes "primary" to
#          DIR/NODE.role.
# demote:  writes "secondary" to DIR/NODE.role, then appends "NODE demote SEQ UPTIME".
#
# A promotion is recorded when it starts and a demotion when it has finished, so a
# record where "A demote" comes before "B promote" proves that A had given up the role
# before B began to take it. SEQ is the line's number in the record (appends are
# serialized with flock), UPTIME is /proc/uptime: seconds since boot, one clock for every
# namespace of the machine.
#
# Simulation knob: if DIR/demote-delay holds a number of seconds, a demotion takes that
# long (a slow flush), to show that keepalive-d waits for it.
set -eu

usage() {
    echo "usage: $0 NODE promote|demote [DIR]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
node=$1
action=$2
dir=${3:-/var/lib/storage-failover}
case $action in
promote | demote) ;;
*) usage ;;
esac
case $node in
'' | */* | .*) usage ;;
esac

mkdir -p "$dir"
record=$dir/record
role=$dir/$node.role

append() {
    exec 9>>"$record"
    flock 9
    seq=$(($(wc -l <"$record") + 1))
    read -r uptime _ </proc/uptime
    printf '%s %s %s %s\n' "$node" "$action" "$seq" "$uptime" >&9
    exec 9>&-
}

set_role() {
    printf '%s\n' "$1" >"$role.tmp"
    mv -f "$role.tmp" "$role"
}

case $action in
promote)
    append
    # Real pair: drbdadm primary r0 && mount /dev/drbd0 /srv/nfs && exportfs -ra
    set_role primary
    ;;
demote)
    if [ -s "$dir/demote-delay" ]; then
        sleep "$(cat "$dir/demote-delay")"
    fi
    # Real pair: exportfs -ua; umount /srv/nfs && drbdadm secondary r0
    set_role secondary
    append
    ;;
esac
