#!/bin/sh
# Prepares (start) or undoes (stop) a web server behind a direct-routing director pair
# (examples/web-farm-dr/README.md). Run as root on each web server:
#
#   realserver.sh start 10.0.0.100      # the VIP; interface defaults to eth0
#   realserver.sh stop 10.0.0.100 eth0
#
# Direct routing delivers the client's packets to this server unchanged, addressed to the
# VIP, so the server must hold the VIP (on lo, /32) -- but must never answer ARP for it,
# or it would steal the VIP from the directors:
#   arp_ignore=1    answer ARP only for addresses configured on the asking interface
#                   (the VIP is on lo, so eth0 never answers for it);
#   arp_announce=2  never use the VIP as the source of this server's own ARP requests.
# Idempotent: running `start` twice is harmless.
set -eu
action=${1:?usage: realserver.sh start|stop VIP [INTERFACE]}
vip=${2:?usage: realserver.sh start|stop VIP [INTERFACE]}
dev=${3:-eth0}

case "$action" in
start)
	for c in all "$dev"; do
		sysctl -q -w "net.ipv4.conf.$c.arp_ignore=1" "net.ipv4.conf.$c.arp_announce=2"
	done
	ip addr replace "$vip/32" dev lo
	ip link set lo up
	;;
stop)
	ip addr del "$vip/32" dev lo 2>/dev/null || true
	for c in all "$dev"; do
		sysctl -q -w "net.ipv4.conf.$c.arp_ignore=0" "net.ipv4.conf.$c.arp_announce=0"
	done
	;;
*)
	echo "usage: realserver.sh start|stop VIP [INTERFACE]" >&2
	exit 2
	;;
esac
