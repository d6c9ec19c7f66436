#!/bin/sh
# Captures real `ipvsadm -S -n` outputs as test vectors.
#
# Runs inside the kernel lab (it needs a kernel with IPVS and root):
#
#   cargo lab run -- ipvs/tests/ipvsadm/capture.sh [CASE...] > /tmp/capture.out
#   ipvs/tests/ipvsadm/split.sh < /tmp/capture.out
#
# (with CASE names, only those cases run.) A command starting with `!` is run as a shell
# command in the namespace instead of ipvsadm (e.g. nl_add_dest.py, for what ipvsadm
# cannot set).
# Every case runs in a fresh network namespace: its ipvsadm commands run one by one (a
# failing command is recorded with its exit status and message, and the case goes on),
# then `ipvsadm -S -n` saves the table. split.sh writes CASE.cmds (the commands, with
# `# exit N: message` after a failing one) and CASE.save (the saved table) next to it.
set -u

here=$(cd "$(dirname "$0")" && pwd)
only="$*"

run_case() {
    name="$1"; shift
    if [ -n "$only" ] && ! echo " $only " | grep -q " $name "; then
        return
    fi
    ns="cap-$name"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # A local address for the "local node" forwarding case.
    ip -n "$ns" link add dummy0 type dummy 2>/dev/null && \
        ip -n "$ns" addr add 198.51.100.1/24 dev dummy0 && \
        ip -n "$ns" link set dummy0 up
    echo "=== case $name"
    for cmd in "$@"; do
        case "$cmd" in
        !*)
            echo "--- cmd ${cmd#!}"
            # shellcheck disable=SC2086
            err=$(cd "$here" && ip netns exec "$ns" ${cmd#!} 2>&1)
            rc=$?
            ;;
        *)
            echo "--- cmd ipvsadm $cmd"
            # shellcheck disable=SC2086
            err=$(ip netns exec "$ns" ipvsadm $cmd 2>&1)
            rc=$?
            ;;
        esac
        if [ "$rc" -ne 0 ]; then
            echo "--- exit $rc: $(echo "$err" | head -1)"
        fi
    done
    echo "--- save"
    ip netns exec "$ns" ipvsadm -S -n
    echo "--- end"
    ip netns del "$ns"
}

# The outputs quoted in the task, as a baseline.
run_case basic \
    "-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0" \
    "-a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10" \
    "-a -t 192.0.2.20:443 -r 10.0.0.22:443 -i -w 20" \
    "-A -u [2001:db8::53]:53 -s sh -b sh-port" \
    "-a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1" \
    "-A -f 7 -s lc" \
    "-a -f 7 -r 10.0.0.31:0 -g -w 5" \
    "-A -t [2001:db8::10]:443 -s mh -p -b mh-port" \
    "-a -t [2001:db8::10]:443 -r [2001:db8:1::11]:443 -i -w 1 --tun-type gue --tun-port 6080"

# Every scheduler the kernel ships, and an unknown one.
run_case schedulers \
    "-A -t 192.0.2.1:1 -s rr" "-A -t 192.0.2.1:2 -s wrr" "-A -t 192.0.2.1:3 -s lc" \
    "-A -t 192.0.2.1:4 -s wlc" "-A -t 192.0.2.1:5 -s lblc" "-A -t 192.0.2.1:6 -s lblcr" \
    "-A -t 192.0.2.1:7 -s dh" "-A -t 192.0.2.1:8 -s sh" "-A -t 192.0.2.1:9 -s sed" \
    "-A -t 192.0.2.1:10 -s nq" "-A -t 192.0.2.1:11 -s fo" "-A -t 192.0.2.1:12 -s ovf" \
    "-A -t 192.0.2.1:13 -s mh" "-A -t 192.0.2.1:14 -s twos" "-A -t 192.0.2.1:15" \
    "-A -t 192.0.2.1:16 -s nosuchsched"

# Scheduler flags, all spellings.
run_case sched_flags \
    "-A -t 192.0.2.1:80 -s sh -b sh-fallback,sh-port" \
    "-A -t 192.0.2.1:81 -s sh -b sh-fallback" \
    "-A -t 192.0.2.1:82 -s mh -b mh-fallback" \
    "-A -t 192.0.2.1:83 -s mh -b mh-fallback,mh-port" \
    "-A -t 192.0.2.1:84 -s rr -b flag-1,flag-2,flag-3" \
    "-A -t 192.0.2.1:85 -s sh -b flag-3" \
    "-A -t 192.0.2.1:86 -s sh -b flag-1,flag-2" \
    "-A -t 192.0.2.1:87 -s rr -b sh-port" \
    "-A -t 192.0.2.1:88 -s mh -b flag-3,mh-port"

# Persistence, netmasks, persistence engine, one-packet scheduling.
run_case persistence \
    "-A -t 192.0.2.1:80 -p" \
    "-A -t 192.0.2.1:81 -p 1" \
    "-A -t 192.0.2.1:82 -p 2678400 -M 255.255.0.0" \
    "-A -t 192.0.2.1:83 -p 60 -M 255.255.255.255" \
    "-A -t 192.0.2.1:84 -M 255.255.255.0" \
    "-A -t 192.0.2.1:85 -p 60 -M 255.0.255.0" \
    "-A -t 192.0.2.1:0 -p 120" \
    "-A -t 192.0.2.1:0" \
    "-A -t [2001:db8::1]:80 -p 60 -M 64" \
    "-A -t [2001:db8::1]:81 -p 60 -M 128" \
    "-A -t [2001:db8::1]:82 -p 60 -M 0" \
    "-A -f 1 -6 -p 30 -M 48" \
    "-A -f 2 -p 30 -M 255.255.255.128" \
    "-A -u 192.0.2.1:5060 -p 60 --pe sip" \
    "-A -u 192.0.2.1:5061 --pe sip" \
    "-A -u 192.0.2.1:53 -o" \
    "-A -t 192.0.2.1:53 -o" \
    "-A -f 3 -o" \
    "-A -u 192.0.2.1:54 -s sh -p 10 -M 255.255.255.0 --pe sip -o -b sh-port"

# Forwarding methods, weights, thresholds, ports.
run_case destinations \
    "-A -t 192.0.2.1:80 -s wlc" \
    "-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 0" \
    "-a -t 192.0.2.1:80 -r 10.0.0.2 -m -w 65535" \
    "-a -t 192.0.2.1:80 -r 10.0.0.3:8080 -g" \
    "-a -t 192.0.2.1:80 -r 10.0.0.4 -i" \
    "-a -t 192.0.2.1:80 -r 10.0.0.5:80 -m -x 100 -y 10" \
    "-a -t 192.0.2.1:80 -r 10.0.0.6:80 -m -y 10" \
    "-a -t 192.0.2.1:80 -r 10.0.0.7:80 -m -w 65536" \
    "-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m" \
    "-a -t 192.0.2.1:80 -r 127.0.0.1:81 -g" \
    "-a -t 192.0.2.1:80 -r [2001:db8::7]:80 -m" \
    "-a -t 192.0.2.1:80 -r [2001:db8::8]:80 -i" \
    "--add-server --tcp-service 192.0.2.1:80 --real-server 10.0.0.9:80 --masquerading --weight 3" \
    "-a -t 192.0.2.1:80 -r 10.0.0.10:80 --gatewaying" \
    "-a -t 192.0.2.1:80 -r 10.0.0.11:80 --ipip" \
    "-A -t 192.0.2.1:0 -p" \
    "-a -t 192.0.2.1:0 -r 10.0.0.1 -m" \
    "-a -t 192.0.2.1:0 -r 10.0.0.2:0 -g"

# Tunnel types and checksum options.
run_case tunnels \
    "-A -t 192.0.2.1:80" \
    "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i --tun-type ipip" \
    "-a -t 192.0.2.1:80 -r 10.0.0.2:80 -i --tun-type gue --tun-port 5555" \
    "-a -t 192.0.2.1:80 -r 10.0.0.3:80 -i --tun-type gue --tun-port 5555 --tun-csum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.4:80 -i --tun-type gue --tun-port 5555 --tun-remcsum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.5:80 -i --tun-type gre" \
    "-a -t 192.0.2.1:80 -r 10.0.0.6:80 -i --tun-type gre --tun-csum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.7:80 -i --tun-type gre --tun-nocsum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.8:80 -i --tun-type gre --tun-remcsum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.9:80 -i --tun-type gue" \
    "-a -t 192.0.2.1:80 -r 10.0.0.10:80 -i --tun-type ipip --tun-csum" \
    "-a -t 192.0.2.1:80 -r 10.0.0.11:80 -m --tun-type gre" \
    "-a -t 192.0.2.1:80 -r 10.0.0.12:80 -i --tun-type gue --tun-port 1 --tun-nocsum -w 7"

# Protocols and address forms.
run_case protocols \
    "-A --sctp-service 192.0.2.1:3868 -s rr" \
    "-a --sctp-service 192.0.2.1:3868 -r 10.0.0.1:3868 -m" \
    "-A -u 192.0.2.1:53" \
    "-A -t 192.0.2.1:80" \
    "-A -t [::ffff:192.0.2.1]:80" \
    "-A -t [::2]:80" \
    "-A -t [::1.2.3.4]:80" \
    "-A -t [2001:db8:0:0:1:0:0:1]:80" \
    "-A -t [2001:db8::1:0:0:1]:81" \
    "-A -t [2001:0db8:0000:0000:0000:0000:0000:0001]:82" \
    "-A -t 2001:db8::99 -p" \
    "-A -f 4294967295" \
    "-A -f 1 -6" \
    "-A -f 1"

# Sort order: services and destinations whose addresses differ by 2^31 or more.
run_case ordering \
    "-A -t 10.0.0.1:80" \
    "-A -t 192.168.0.1:80" \
    "-A -t 203.0.113.1:80" \
    "-A -t 192.168.0.1:79" \
    "-A -u 10.0.0.1:80" \
    "-A -f 2147483649" \
    "-A -f 1" \
    "-A -f 3" \
    "-A -t [2001:db8::1]:80" \
    "-A -t [fe80::1]:80" \
    "-A -u [2001:db8::1]:80" \
    "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m" \
    "-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m" \
    "-a -t 10.0.0.1:80 -r 172.16.0.1:80 -m" \
    "-a -t 10.0.0.1:80 -r 10.1.0.1:81 -m" \
    "-a -t 10.0.0.1:80 -r 10.1.0.1:79 -m"

# Forwarding methods ipvsadm cannot set (local node, bypass) and how -S prints them.
run_case forwarding \
    "-A -t 192.0.2.1:80" \
    "!./nl_add_dest.py tcp 192.0.2.1 80 10.0.0.1 80 1" \
    "!./nl_add_dest.py tcp 192.0.2.1 80 10.0.0.2 8080 4" \
    "!./nl_add_dest.py tcp 192.0.2.1 80 10.0.0.3 8080 3" \
    "!./nl_add_dest.py tcp 192.0.2.1 80 10.0.0.4 8080 2" \
    "!./nl_add_dest.py tcp 192.0.2.1 80 10.0.0.5 80 5"
