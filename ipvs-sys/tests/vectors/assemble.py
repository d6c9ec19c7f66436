#!/usr/bin/env python3
"""Assemble the hand-written IPVS test vectors in this directory.

Each vector is built field by field from the kernel's struct layouts
(struct nlmsghdr, struct genlmsghdr, struct nlattr, struct ip_vs_flags,
union nf_inet_addr) and the attribute order of ip_vs_genl_fill_service(),
ip_vs_genl_fill_dest(), ip_vs_genl_fill_daemon(), ip_vs_genl_fill_stats*()
in net/netfilter/ipvs/ip_vs_ctl.c, or of ipvsadm's libipvs for requests.
It deliberately shares no code with the Rust encoder it checks.

Output: one commented .hex file per vector (x86_64, little-endian host).
Run from this directory: python3 assemble.py
"""
import struct

FAMILY = 0x1C  # family id the vectors pretend the kernel assigned to "IPVS"
PID = 0x1234   # port id of the userspace socket in kernel replies

def le16(v): return struct.pack("<H", v)
def le32(v): return struct.pack("<I", v)
def le64(v): return struct.pack("<Q", v)
def be16(v): return struct.pack(">H", v)

class Attr:
    def __init__(self, typ, name, payload=b"", children=None, comment=""):
        self.typ, self.name, self.payload, self.children, self.comment = typ, name, payload, children, comment
    def body(self):
        if self.children is not None:
            return b"".join(c.encode() for c in self.children)
        return self.payload
    def encode(self):
        b = self.body()
        n = 4 + len(b)
        return le16(n) + le16(self.typ) + b + b"\0" * ((-n) % 4)
    def lines(self, ind):
        b = self.body()
        n = 4 + len(b)
        out = [f"{ind}{le16(n).hex(' ')} {le16(self.typ).hex(' ')}  # {self.name}: nla_len={n}, nla_type={self.typ:#x}"]
        if self.children is not None:
            for c in self.children:
                out += c.lines(ind + "    ")
        elif b:
            out.append(f"{ind}    {b.hex(' ')}  # {self.comment}")
        pad = (-n) % 4
        if pad:
            out.append(f"{ind}    {'00 ' * pad}".rstrip() + "  # padding")
        return out

def A(typ, name, payload, comment): return Attr(typ, name, payload, None, comment)
def N(typ, name, *children): return Attr(typ, name, b"", list(children))

def u16a(t, n, v): return A(t, n, le16(v), f"u16 {v}")
def u32a(t, n, v): return A(t, n, le32(v), f"u32 {v}")
def u64a(t, n, v): return A(t, n, le64(v), f"u64 {v}")
def be16a(t, n, v): return A(t, n, be16(v), f"__be16 {v} (network order)")
def u8a(t, n, v): return A(t, n, bytes([v]), f"u8 {v}")
def stra(t, n, s): return A(t, n, s.encode() + b"\0", f'"{s}" + NUL')
def v4(t, n, a, padded=True):
    b = bytes(int(x) for x in a.split("."))
    return A(t, n, b + (b"\0" * 12 if padded else b""), f"{a}" + (" + 12 zero bytes (union nf_inet_addr)" if padded else " (4 bytes)"))

class Msg:
    def __init__(self, typ, flags, seq, pid, name, cmd=None, attrs=(), raw=None):
        self.typ, self.flags, self.seq, self.pid, self.name = typ, flags, seq, pid, name
        self.cmd, self.attrs, self.raw = cmd, list(attrs), raw
    def payload(self):
        if self.raw is not None:
            return self.raw[0]
        return bytes([self.cmd, 1, 0, 0]) + b"".join(a.encode() for a in self.attrs)
    def lines(self):
        p = self.payload()
        n = 16 + len(p)
        out = [f"# ---- {self.name}",
               f"{le32(n).hex(' ')}  # nlmsg_len = {n}",
               f"{le16(self.typ).hex(' ')}  # nlmsg_type = {self.typ:#x}",
               f"{le16(self.flags).hex(' ')}  # nlmsg_flags = {self.flags:#x}",
               f"{le32(self.seq).hex(' ')}  # nlmsg_seq = {self.seq}",
               f"{le32(self.pid).hex(' ')}  # nlmsg_pid = {self.pid:#x}"]
        if self.raw is not None:
            out += self.raw[1]
        else:
            out.append(f"{bytes([self.cmd, 1, 0, 0]).hex(' ')}  # genlmsghdr: cmd={self.cmd}, version=1, reserved=0")
            for a in self.attrs:
                out += a.lines("")
        return out

def write(name, title, msgs):
    with open(f"{name}.hex", "w") as f:
        f.write(f"# {title}\n# Assembled by assemble.py from the kernel struct layouts; x86_64 byte order.\n")
        for m in msgs:
            f.write("\n".join(m.lines()) + "\n")

REQ_ACK = 0x0005   # NLM_F_REQUEST | NLM_F_ACK
REQ_DUMP = 0x0301  # NLM_F_REQUEST | NLM_F_DUMP
MULTI = 0x0002     # NLM_F_MULTI

def svc_v4_tcp_key(nested_flag=False):
    t = 0x8001 if nested_flag else 1
    return t

def ipvsadm_service(sched, nested_flag=False):
    # ipvs_nl_fill_service_attr(): AF, PROTOCOL, ADDR, PORT, SCHED_NAME, FLAGS, TIMEOUT, NETMASK
    return N(0x8001 if nested_flag else 1, "IPVS_CMD_ATTR_SERVICE" + (" | NLA_F_NESTED" if nested_flag else ""),
             u16a(1, "IPVS_SVC_ATTR_AF", 2),
             u16a(2, "IPVS_SVC_ATTR_PROTOCOL", 6),
             v4(3, "IPVS_SVC_ATTR_ADDR", "192.0.2.10"),
             be16a(4, "IPVS_SVC_ATTR_PORT", 80),
             stra(6, "IPVS_SVC_ATTR_SCHED_NAME", sched),
             A(7, "IPVS_SVC_ATTR_FLAGS", le32(0) + le32(0xFFFFFFFF), "struct ip_vs_flags { flags = 0, mask = 0xffffffff }"),
             u32a(8, "IPVS_SVC_ATTR_TIMEOUT", 0),
             A(9, "IPVS_SVC_ATTR_NETMASK", bytes([255] * 4), "255.255.255.255 (__be32 mask)"))

# 1. ipvsadm -A -t 192.0.2.10:80 -s rr
write("ipvsadm_add_service_tcp", "ipvsadm -A -t 192.0.2.10:80 -s rr  (IPVS_CMD_NEW_SERVICE)",
      [Msg(FAMILY, REQ_ACK, 1, 0, "request", 1, [ipvsadm_service("rr")])])

# 1b. the same with NLA_F_NESTED on the nest (newer libnl sets it); decode-only.
write("ipvsadm_add_service_nested_flag", "ipvsadm -A -t 192.0.2.10:80 -s rr with NLA_F_NESTED on the nest",
      [Msg(FAMILY, REQ_ACK, 1, 0, "request", 1, [ipvsadm_service("rr", True)])])

# 2. ipvsadm -E -t 192.0.2.10:80 -s wlc -p 300 (persistent)
svc = ipvsadm_service("wlc")
svc.children[5] = A(7, "IPVS_SVC_ATTR_FLAGS", le32(1) + le32(0xFFFFFFFF), "struct ip_vs_flags { flags = PERSISTENT, mask = 0xffffffff }")
svc.children[6] = u32a(8, "IPVS_SVC_ATTR_TIMEOUT", 300)
write("ipvsadm_edit_service_persistent", "ipvsadm -E -t 192.0.2.10:80 -s wlc -p 300  (IPVS_CMD_SET_SERVICE)",
      [Msg(FAMILY, REQ_ACK, 2, 0, "request", 2, [svc])])

# 3. delete a fwmark IPv6 service: key only
write("del_service_fwmark6", "DEL_SERVICE of fwmark 7, AF_INET6 (key only)",
      [Msg(FAMILY, REQ_ACK, 3, 0, "request", 3, [N(1, "IPVS_CMD_ATTR_SERVICE",
            u16a(1, "IPVS_SVC_ATTR_AF", 10), u32a(5, "IPVS_SVC_ATTR_FWMARK", 7))])])

def svc_key():
    return N(1, "IPVS_CMD_ATTR_SERVICE",
             u16a(1, "IPVS_SVC_ATTR_AF", 2),
             u16a(2, "IPVS_SVC_ATTR_PROTOCOL", 6),
             v4(3, "IPVS_SVC_ATTR_ADDR", "192.0.2.10"),
             be16a(4, "IPVS_SVC_ATTR_PORT", 80))

# 4. ipvsadm -a -t 192.0.2.10:80 -r 198.51.100.7:8080 -g -w 1, in kernel attribute order
def dest_cfg(order):
    attrs = {
        "af": u16a(11, "IPVS_DEST_ATTR_ADDR_FAMILY", 2),
        "addr": v4(1, "IPVS_DEST_ATTR_ADDR", "198.51.100.7"),
        "port": be16a(2, "IPVS_DEST_ATTR_PORT", 8080),
        "fwd": u32a(3, "IPVS_DEST_ATTR_FWD_METHOD", 3),
        "weight": u32a(4, "IPVS_DEST_ATTR_WEIGHT", 1),
        "u": u32a(5, "IPVS_DEST_ATTR_U_THRESH", 0),
        "l": u32a(6, "IPVS_DEST_ATTR_L_THRESH", 0),
    }
    return N(2, "IPVS_CMD_ATTR_DEST", *[attrs[k] for k in order])

# Requests carry the destination in libipvs order (ADDR_FAMILY first).
write("new_dest_route", "NEW_DEST 198.51.100.7:8080 -g -w 1 into tcp 192.0.2.10:80 (service key only)",
      [Msg(FAMILY, REQ_ACK, 4, 0, "request", 5, [svc_key(), dest_cfg(["af", "addr", "port", "fwd", "weight", "u", "l"])])])
# 4b. the same as ipvsadm sends it (full service with its default scheduler)
write("ipvsadm_add_dest_route", "ipvsadm -a -t 192.0.2.10:80 -r 198.51.100.7:8080 -g -w 1 (ipvsadm attribute order, full service)",
      [Msg(FAMILY, REQ_ACK, 4, 0, "request", 5, [ipvsadm_service("wlc"), dest_cfg(["af", "addr", "port", "fwd", "weight", "u", "l"])])])

# 5. SET_DEST with GUE tunnel, IPv6 destination in an IPv4 service (libipvs order)
write("set_dest_gue6", "SET_DEST [2001:db8::7]:0 tunnel GUE port 6080 csum, weight 2147483647",
      [Msg(FAMILY, REQ_ACK, 5, 0, "request", 6, [svc_key(), N(2, "IPVS_CMD_ATTR_DEST",
            u16a(11, "IPVS_DEST_ATTR_ADDR_FAMILY", 10),
            A(1, "IPVS_DEST_ATTR_ADDR", bytes.fromhex("20010db8000000000000000000000007"), "2001:db8::7"),
            be16a(2, "IPVS_DEST_ATTR_PORT", 0),
            u32a(3, "IPVS_DEST_ATTR_FWD_METHOD", 2),
            u32a(4, "IPVS_DEST_ATTR_WEIGHT", 0x7FFFFFFF),
            u8a(13, "IPVS_DEST_ATTR_TUN_TYPE", 1),
            be16a(14, "IPVS_DEST_ATTR_TUN_PORT", 6080),
            u16a(15, "IPVS_DEST_ATTR_TUN_FLAGS", 1),
            u32a(5, "IPVS_DEST_ATTR_U_THRESH", 100),
            u32a(6, "IPVS_DEST_ATTR_L_THRESH", 10))])])

# 6. DEL_DEST, dest without ADDR_FAMILY (service family applies)
write("del_dest_no_af", "DEL_DEST 198.51.100.7:8080 without IPVS_DEST_ATTR_ADDR_FAMILY (service AF_INET applies)",
      [Msg(FAMILY, REQ_ACK, 6, 0, "request", 7, [svc_key(), N(2, "IPVS_CMD_ATTR_DEST",
            v4(1, "IPVS_DEST_ATTR_ADDR", "198.51.100.7"), be16a(2, "IPVS_DEST_ATTR_PORT", 8080))])])

# 7. dumps and simple requests
write("get_service_dump", "GET_SERVICE dump request (ipvsadm -Ln)", [Msg(FAMILY, REQ_DUMP, 7, 0, "request", 4, [])])
write("get_service_one", "GET_SERVICE of one service (doit)", [Msg(FAMILY, REQ_ACK, 8, 0, "request", 4, [svc_key()])])
write("get_dest_dump", "GET_DEST dump of tcp 192.0.2.10:80", [Msg(FAMILY, REQ_DUMP, 9, 0, "request", 8, [svc_key()])])
write("get_daemon_dump", "GET_DAEMON dump", [Msg(FAMILY, REQ_DUMP, 10, 0, "request", 11, [])])
write("get_config", "GET_CONFIG (not a dump)", [Msg(FAMILY, REQ_ACK, 11, 0, "request", 13, [])])
write("get_info", "GET_INFO (not a dump)", [Msg(FAMILY, REQ_ACK, 12, 0, "request", 15, [])])
write("zero_all", "ZERO of everything (no service)", [Msg(FAMILY, REQ_ACK, 13, 0, "request", 16, [])])
write("zero_service", "ZERO of one service", [Msg(FAMILY, REQ_ACK, 14, 0, "request", 16, [svc_key()])])
write("flush", "FLUSH (ipvsadm -C)", [Msg(FAMILY, REQ_ACK, 15, 0, "request", 17, [])])
write("set_config", "ipvsadm --set 900 120 300  (SET_CONFIG)",
      [Msg(FAMILY, REQ_ACK, 16, 0, "request", 12, [
          u32a(4, "IPVS_CMD_ATTR_TIMEOUT_TCP", 900), u32a(5, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", 120),
          u32a(6, "IPVS_CMD_ATTR_TIMEOUT_UDP", 300)])])
# libipvs ipvs_start_daemon() order: STATE, MCAST_IFN, SYNC_ID, SYNC_MAXLEN, MCAST_PORT, MCAST_TTL, MCAST_GROUP
write("new_daemon", "ipvsadm --start-daemon master --mcast-interface eth0 --syncid 9 --sync-maxlen 1472 --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 1",
      [Msg(FAMILY, REQ_ACK, 17, 0, "request", 9, [N(3, "IPVS_CMD_ATTR_DAEMON",
          u32a(1, "IPVS_DAEMON_ATTR_STATE", 1), stra(2, "IPVS_DAEMON_ATTR_MCAST_IFN", "eth0"),
          u32a(3, "IPVS_DAEMON_ATTR_SYNC_ID", 9), u16a(4, "IPVS_DAEMON_ATTR_SYNC_MAXLEN", 1472),
          A(7, "IPVS_DAEMON_ATTR_MCAST_PORT", le16(8848), "u16 8848 in HOST order"),
          u8a(8, "IPVS_DAEMON_ATTR_MCAST_TTL", 1),
          A(5, "IPVS_DAEMON_ATTR_MCAST_GROUP", bytes([224, 0, 0, 81]), "224.0.0.81 (struct in_addr)"))])])
write("del_daemon", "ipvsadm --stop-daemon backup", [Msg(FAMILY, REQ_ACK, 18, 0, "request", 10, [N(3, "IPVS_CMD_ATTR_DAEMON",
      u32a(1, "IPVS_DAEMON_ATTR_STATE", 2))])])

# ---- kernel replies -------------------------------------------------------
def stats32(t, name, base):
    return N(t, name,
             u32a(1, "IPVS_STATS_ATTR_CONNS", base + 1), u32a(2, "IPVS_STATS_ATTR_INPKTS", base + 2),
             u32a(3, "IPVS_STATS_ATTR_OUTPKTS", base + 3), u64a(4, "IPVS_STATS_ATTR_INBYTES", (1 << 32) + base + 4),
             u64a(5, "IPVS_STATS_ATTR_OUTBYTES", base + 5), u32a(6, "IPVS_STATS_ATTR_CPS", base + 6),
             u32a(7, "IPVS_STATS_ATTR_INPPS", base + 7), u32a(8, "IPVS_STATS_ATTR_OUTPPS", base + 8),
             u32a(9, "IPVS_STATS_ATTR_INBPS", base + 9), u32a(10, "IPVS_STATS_ATTR_OUTBPS", base + 10))

def stats64(t, name, base, pad=False):
    kids = []
    for i, n in enumerate(["CONNS", "INPKTS", "OUTPKTS", "INBYTES", "OUTBYTES", "CPS", "INPPS", "OUTPPS", "INBPS", "OUTBPS"], 1):
        if pad:
            kids.append(A(11, "IPVS_STATS_ATTR_PAD", b"", ""))
        kids.append(u64a(i, "IPVS_STATS_ATTR_" + n, (1 << 40) + base + i))
    return N(t, name, *kids)

def dumped_service():
    # ip_vs_genl_fill_service(): AF, PROTOCOL, ADDR, PORT, SCHED_NAME, FLAGS, TIMEOUT, NETMASK, STATS, STATS64
    return N(1, "IPVS_CMD_ATTR_SERVICE",
             u16a(1, "IPVS_SVC_ATTR_AF", 2), u16a(2, "IPVS_SVC_ATTR_PROTOCOL", 6),
             v4(3, "IPVS_SVC_ATTR_ADDR", "192.0.2.10"), be16a(4, "IPVS_SVC_ATTR_PORT", 80),
             stra(6, "IPVS_SVC_ATTR_SCHED_NAME", "rr"),
             A(7, "IPVS_SVC_ATTR_FLAGS", le32(2) + le32(0xFFFFFFFF), "struct ip_vs_flags { flags = HASHED, mask = 0xffffffff }"),
             u32a(8, "IPVS_SVC_ATTR_TIMEOUT", 0),
             A(9, "IPVS_SVC_ATTR_NETMASK", bytes([255] * 4), "255.255.255.255 (__be32 mask)"),
             stats32(10, "IPVS_SVC_ATTR_STATS", 100), stats64(12, "IPVS_SVC_ATTR_STATS64", 100))

def dumped_fwmark6():
    # fwmark service: no PROTOCOL/ADDR/PORT; PE_NAME after SCHED_NAME; v6 netmask = prefix length
    return N(1, "IPVS_CMD_ATTR_SERVICE",
             u16a(1, "IPVS_SVC_ATTR_AF", 10), u32a(5, "IPVS_SVC_ATTR_FWMARK", 7),
             stra(6, "IPVS_SVC_ATTR_SCHED_NAME", "mh"), stra(11, "IPVS_SVC_ATTR_PE_NAME", "sip"),
             A(7, "IPVS_SVC_ATTR_FLAGS", le32(0x2 | 0x1 | 0x8 | 0x10) + le32(0xFFFFFFFF), "flags = PERSISTENT|HASHED|SCHED1|SCHED2, mask = 0xffffffff"),
             u32a(8, "IPVS_SVC_ATTR_TIMEOUT", 360),
             A(9, "IPVS_SVC_ATTR_NETMASK", le32(64), "prefix length 64 as HOST-order u32"),
             stats32(10, "IPVS_SVC_ATTR_STATS", 0), stats64(12, "IPVS_SVC_ATTR_STATS64", 0))

def done(seq):
    return Msg(3, MULTI, seq, PID, "NLMSG_DONE", raw=(le32(0), [f"{le32(0).hex(' ')}  # int error = 0"]))

write("reply_dump_services", "Kernel reply to the GET_SERVICE dump: two NEW_SERVICE messages and NLMSG_DONE",
      [Msg(FAMILY, MULTI, 7, PID, "NEW_SERVICE tcp 192.0.2.10:80 rr", 1, [dumped_service()]),
       Msg(FAMILY, MULTI, 7, PID, "NEW_SERVICE fwmark 7 AF_INET6 mh, pe sip", 1, [dumped_fwmark6()]),
       done(7)])

def dumped_dest():
    # ip_vs_genl_fill_dest(): ADDR, PORT, FWD_METHOD, WEIGHT, TUN_TYPE, TUN_PORT, TUN_FLAGS, U_THRESH,
    # L_THRESH, ACTIVE_CONNS, INACT_CONNS, PERSIST_CONNS, ADDR_FAMILY, STATS, STATS64
    return N(2, "IPVS_CMD_ATTR_DEST",
             v4(1, "IPVS_DEST_ATTR_ADDR", "198.51.100.7"), be16a(2, "IPVS_DEST_ATTR_PORT", 8080),
             u32a(3, "IPVS_DEST_ATTR_FWD_METHOD", 3), u32a(4, "IPVS_DEST_ATTR_WEIGHT", 1),
             u8a(13, "IPVS_DEST_ATTR_TUN_TYPE", 0), be16a(14, "IPVS_DEST_ATTR_TUN_PORT", 0),
             u16a(15, "IPVS_DEST_ATTR_TUN_FLAGS", 0),
             u32a(5, "IPVS_DEST_ATTR_U_THRESH", 0), u32a(6, "IPVS_DEST_ATTR_L_THRESH", 0),
             u32a(7, "IPVS_DEST_ATTR_ACTIVE_CONNS", 3), u32a(8, "IPVS_DEST_ATTR_INACT_CONNS", 4),
             u32a(9, "IPVS_DEST_ATTR_PERSIST_CONNS", 5), u16a(11, "IPVS_DEST_ATTR_ADDR_FAMILY", 2),
             stats32(10, "IPVS_DEST_ATTR_STATS", 200), stats64(12, "IPVS_DEST_ATTR_STATS64", 200))

write("reply_dump_dests", "Kernel reply to the GET_DEST dump: one NEW_DEST and NLMSG_DONE",
      [Msg(FAMILY, MULTI, 9, PID, "NEW_DEST 198.51.100.7:8080 route w1", 5, [dumped_dest()]), done(9)])
write("reply_dump_dests_missing_service", "Kernel reply to a GET_DEST dump of a missing service: only NLMSG_DONE",
      [done(9)])

# Stats64 with PAD attributes as emitted on arm/arm64 etc. (nla_put_u64_64bit); decode-only.
write("reply_dest_stats_pad", "NEW_DEST whose 64-bit counters are preceded by IPVS_STATS_ATTR_PAD (non-x86 kernels)",
      [Msg(FAMILY, MULTI, 9, PID, "NEW_DEST with PAD", 5, [N(2, "IPVS_CMD_ATTR_DEST",
          v4(1, "IPVS_DEST_ATTR_ADDR", "198.51.100.7"), be16a(2, "IPVS_DEST_ATTR_PORT", 8080),
          u16a(11, "IPVS_DEST_ATTR_ADDR_FAMILY", 2),
          stats64(12, "IPVS_DEST_ATTR_STATS64", 200, pad=True))])])

# Daemon dump: ip_vs_genl_fill_daemon(): STATE, MCAST_IFN, SYNC_ID, SYNC_MAXLEN, MCAST_PORT, MCAST_TTL, MCAST_GROUP(6)
write("reply_dump_daemons", "Kernel reply to the GET_DAEMON dump: master (IPv4 group), backup (IPv6 group), NLMSG_DONE",
      [Msg(FAMILY, MULTI, 10, PID, "NEW_DAEMON master", 9, [N(3, "IPVS_CMD_ATTR_DAEMON",
          u32a(1, "IPVS_DAEMON_ATTR_STATE", 1), stra(2, "IPVS_DAEMON_ATTR_MCAST_IFN", "eth0"),
          u32a(3, "IPVS_DAEMON_ATTR_SYNC_ID", 9), u16a(4, "IPVS_DAEMON_ATTR_SYNC_MAXLEN", 1472),
          A(7, "IPVS_DAEMON_ATTR_MCAST_PORT", le16(8848), "u16 8848 in HOST order"),
          u8a(8, "IPVS_DAEMON_ATTR_MCAST_TTL", 1),
          A(5, "IPVS_DAEMON_ATTR_MCAST_GROUP", bytes([224, 0, 0, 81]), "224.0.0.81"))]),
       Msg(FAMILY, MULTI, 10, PID, "NEW_DAEMON backup", 9, [N(3, "IPVS_CMD_ATTR_DAEMON",
          u32a(1, "IPVS_DAEMON_ATTR_STATE", 2), stra(2, "IPVS_DAEMON_ATTR_MCAST_IFN", "bond0.100"),
          u32a(3, "IPVS_DAEMON_ATTR_SYNC_ID", 255), u16a(4, "IPVS_DAEMON_ATTR_SYNC_MAXLEN", 8952),
          A(7, "IPVS_DAEMON_ATTR_MCAST_PORT", le16(8848), "u16 8848 in HOST order"),
          u8a(8, "IPVS_DAEMON_ATTR_MCAST_TTL", 64),
          A(6, "IPVS_DAEMON_ATTR_MCAST_GROUP6", bytes.fromhex("ff020000000000000000000000000051"), "ff02::51"))]),
       done(10)])

def ack(seq, req_len, req_type, req_flags):
    echo = le32(req_len) + le16(req_type) + le16(req_flags) + le32(seq) + le32(PID)
    return Msg(2, 0x100, seq, PID, "NLMSG_ERROR (ACK, NLM_F_CAPPED)", raw=(le32(0) + echo, [
        f"{le32(0).hex(' ')}  # error = 0 (ACK)",
        f"{echo.hex(' ')}  # echoed request nlmsghdr (len {req_len}, seq {seq})"]))

write("reply_get_config", "Kernel reply to GET_CONFIG: SET_CONFIG with the three timeouts, then the ACK",
      [Msg(FAMILY, 0, 11, PID, "SET_CONFIG", 12, [
          u32a(4, "IPVS_CMD_ATTR_TIMEOUT_TCP", 900), u32a(5, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", 120),
          u32a(6, "IPVS_CMD_ATTR_TIMEOUT_UDP", 300)]),
       ack(11, 20, FAMILY, REQ_ACK)])
write("reply_get_info", "Kernel reply to GET_INFO: SET_INFO (version 1.2.1, 4096 buckets) at the first level, then the ACK",
      [Msg(FAMILY, 0, 12, PID, "SET_INFO", 14, [
          u32a(1, "IPVS_INFO_ATTR_VERSION (same number as CMD_ATTR_SERVICE!)", 0x010201),
          u32a(2, "IPVS_INFO_ATTR_CONN_TAB_SIZE (same number as CMD_ATTR_DEST!)", 4096)]),
       ack(12, 20, FAMILY, REQ_ACK)])

# A batch answer: ACK for seq 20, EEXIST for seq 21 (capped, with extended ACK message), ESRCH for seq 22 (uncapped echo)
req21 = le32(104) + le16(FAMILY) + le16(REQ_ACK) + le32(21) + le32(PID)
extack = Attr(1, "NLMSGERR_ATTR_MSG", b"Service exists\0", None, '"Service exists" + NUL')
err21 = Msg(2, 0x300, 21, PID, "NLMSG_ERROR -EEXIST (NLM_F_CAPPED | NLM_F_ACK_TLVS)",
            raw=(struct.pack("<i", -17) + req21 + extack.encode(),
                 [f"{struct.pack('<i', -17).hex(' ')}  # error = -17 (-EEXIST)",
                  f"{req21.hex(' ')}  # echoed request nlmsghdr (len 104, seq 21)"] + extack.lines("")))
req22 = le32(20) + le16(FAMILY) + le16(REQ_ACK) + le32(22) + le32(0) + bytes([3, 1, 0, 0])
err22 = Msg(2, 0, 22, PID, "NLMSG_ERROR -ESRCH (whole request echoed)",
            raw=(struct.pack("<i", -3) + req22,
                 [f"{struct.pack('<i', -3).hex(' ')}  # error = -3 (-ESRCH)",
                  f"{req22.hex(' ')}  # echoed request: nlmsghdr (len 20, seq 22) + genlmsghdr DEL_SERVICE"]))
write("reply_batch_acks", "Kernel answers to a batch: ACK seq 20, EEXIST seq 21 with extended ACK, ESRCH seq 22",
      [ack(20, 104, FAMILY, REQ_ACK), err21, err22])
