#!/usr/bin/env python3
"""Adds an IPVS destination over generic netlink with a raw forwarding method.

ipvsadm cannot set the local-node (1) or bypass (4) forwarding methods; the kernel takes
them over netlink. Used by capture.sh to see how `ipvsadm -S -n` prints them.

usage: nl_add_dest.py PROTO VIP VPORT RIP RPORT FWD   (IPv4 only; PROTO tcp|udp)
"""
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2


def nla(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def message(sock, family, cmd, version, attrs, seq):
    body = struct.pack("=BBH", cmd, version, 0) + attrs
    hdr = struct.pack("=IHHII", 16 + len(body), family, NLM_F_REQUEST | NLM_F_ACK, seq, 0)
    sock.send(hdr + body)
    replies = []
    while True:
        data = sock.recv(65536)
        off = 0
        while off < len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
            payload = data[off + 16:off + length]
            if kind == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", payload)
                if err:
                    raise OSError(-err, "netlink error")
                return replies
            replies.append((kind, payload))
            off += (length + 3) & ~3


def attrs_of(payload):
    out = {}
    off = 4
    while off + 4 <= len(payload):
        n, kind = struct.unpack_from("=HH", payload, off)
        out[kind & 0x3FFF] = payload[off + 4:off + n]
        off += (n + 3) & ~3
    return out


def main():
    proto, vip, vport, rip, rport, fwd = sys.argv[1:7]
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    sock.bind((0, 0))
    replies = message(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1,
                      nla(CTRL_ATTR_FAMILY_NAME, b"IPVS\0"), 1)
    family = struct.unpack("=H", attrs_of(replies[0][1])[CTRL_ATTR_FAMILY_ID][:2])[0]
    addr = lambda a: socket.inet_aton(a) + b"\0" * 12
    svc = (nla(1, struct.pack("=H", socket.AF_INET))
           + nla(2, struct.pack("=H", {"tcp": 6, "udp": 17}[proto]))
           + nla(3, addr(vip))
           + nla(4, struct.pack(">H", int(vport))))
    dest = (nla(1, addr(rip))
            + nla(2, struct.pack(">H", int(rport)))
            + nla(3, struct.pack("=I", int(fwd)))
            + nla(4, struct.pack("=I", 1))
            + nla(5, struct.pack("=I", 0))
            + nla(6, struct.pack("=I", 0))
            + nla(11, struct.pack("=H", socket.AF_INET)))
    message(sock, family, 5, 1, nla(1, svc) + nla(2, dest), 2)  # IPVS_CMD_NEW_DEST


main()
