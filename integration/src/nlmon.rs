//! Captures netlink traffic through an `nlmon` device, to record what the real kernel and
//! real tools (ipvsadm) put on the wire as test vectors.
//!
//! An `nlmon` device taps every netlink message sent in its network namespace; an
//! `AF_PACKET` socket bound to it receives one frame per socket buffer (a dump chunk
//! can hold several netlink messages).

use crate::netns::{CmdError, TestNs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETLINK_GENERIC`, as `sll_protocol` of an nlmon frame.
pub const NETLINK_GENERIC: u16 = 16;
const NLM_F_REQUEST: u16 = 1;

/// One captured frame: the bytes of one socket buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The netlink protocol (16 = generic netlink).
    pub protocol: u16,
    /// The frame's bytes: one or more netlink messages.
    pub data: Vec<u8>,
}

impl Frame {
    /// True if the frame's first message is a request (user space to kernel).
    pub fn is_request(&self) -> bool {
        match (self.data.get(6), self.data.get(7)) {
            (Some(&a), Some(&b)) => u16::from_ne_bytes([a, b]) & NLM_F_REQUEST != 0,
            _ => false,
        }
    }
}

/// An `AF_PACKET` socket on an nlmon device in a namespace.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
}

impl Capture {
    /// Creates `nlmon0` in `ns`, brings it up, and starts capturing on it.
    pub fn start(ns: &TestNs) -> Result<Self, CmdError> {
        ns.run("ip", &["link", "add", "nlmon0", "type", "nlmon"])?;
        ns.run("ip", &["link", "set", "nlmon0", "up"])?;
        Self::attach(ns, "nlmon0")
    }

    /// Starts capturing every frame on the existing interface `ifname` of `ns` (for an
    /// Ethernet interface, `Frame::data` is the whole Ethernet frame).
    pub fn attach(ns: &TestNs, ifname: &str) -> Result<Self, CmdError> {
        ns.enter(|| open_packet_socket(ifname))?
    }

    /// From now on keeps only request frames (user space to the kernel; frames already
    /// queued stay): a classic BPF filter on the socket drops the kernel's replies, which
    /// for dumps of a large table would fill the buffer. Also raises the receive buffer
    /// to `rcvbuf` bytes (`SO_RCVBUFFORCE`: needs CAP_NET_ADMIN).
    pub fn requests_only(&self, rcvbuf: usize) -> Result<(), CmdError> {
        // ldb [6]: the low byte of the first message's nlmsg_flags (host order, x86);
        // jset #NLM_F_REQUEST: keep the whole frame, else drop it.
        let mut code = [
            libc::sock_filter {
                code: 0x30, // BPF_LD | BPF_B | BPF_ABS
                jt: 0,
                jf: 0,
                k: 6,
            },
            libc::sock_filter {
                code: 0x45, // BPF_JMP | BPF_JSET | BPF_K
                jt: 0,
                jf: 1,
                k: u32::from(NLM_F_REQUEST),
            },
            libc::sock_filter {
                code: 0x06, // BPF_RET | BPF_K: accept up to this many bytes
                jt: 0,
                jf: 0,
                k: u32::MAX,
            },
            libc::sock_filter {
                code: 0x06, // BPF_RET | BPF_K: drop
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let prog = libc::sock_fprog {
            len: code.len() as u16,
            filter: code.as_mut_ptr(),
        };
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        for (name, opt, value, len) in [
            (
                "SO_ATTACH_FILTER",
                libc::SO_ATTACH_FILTER,
                (&raw const prog).cast::<libc::c_void>(),
                std::mem::size_of::<libc::sock_fprog>(),
            ),
            (
                "SO_RCVBUFFORCE",
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast::<libc::c_void>(),
                std::mem::size_of::<libc::c_int>(),
            ),
        ] {
            // SAFETY: setsockopt with a pointer to a live value of the size given; the
            // filter program points into `code`, alive until the call returns (the
            // kernel copies it).
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    value,
                    len as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(CmdError(format!(
                    "setsockopt {name}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(())
    }

    /// Every frame captured since the last call (does not block).
    pub fn drain(&self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // SAFETY: zeroed sockaddr_ll is a valid value; recvfrom writes at most `len`
            // bytes into it and at most buf.len() bytes into buf.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut sll).cast(),
                    &mut len,
                )
            };
            let Ok(n) = usize::try_from(n) else { break };
            frames.push(Frame {
                protocol: u16::from_be(sll.sll_protocol),
                data: buf.get(..n).unwrap_or_default().to_vec(),
            });
        }
        frames
    }
}

/// An `AF_PACKET` raw socket for every protocol (`ETH_P_ALL`), in the calling thread's
/// network namespace: what the nlmon and VRRP captures read from.
pub(crate) fn packet_socket() -> Result<OwnedFd, CmdError> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the returned descriptor is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if raw < 0 {
        return Err(CmdError(format!(
            "socket(AF_PACKET): {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn open_packet_socket(ifname: &str) -> Result<Capture, CmdError> {
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| CmdError(format!("if_nametoindex {ifname}: {e}")))?;
    let fd = packet_socket()?;
    // SAFETY: sockaddr_ll is plain old data; zeroed is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
    // SAFETY: bind with a pointer to a live sockaddr_ll and its exact size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(CmdError(format!(
            "bind nlmon0: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(Capture { fd })
}

/// One netlink message of a request frame, as far as counting needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `nlmsg_type`: for generic netlink, the family id (`0x10` is the controller).
    pub kind: u16,
    /// `nlmsg_flags` (`NLM_F_REQUEST`, `NLM_F_DUMP`, ...).
    pub flags: u16,
    /// The generic-netlink command (the first byte after the netlink header).
    pub cmd: u8,
}

/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;

impl Frame {
    /// The generic-netlink requests in this frame: a batched `sendmsg` puts many
    /// messages in one frame. Empty for a reply frame or another protocol.
    pub fn genl_requests(&self) -> Vec<Request> {
        let mut out = Vec::new();
        if self.protocol != NETLINK_GENERIC {
            return out;
        }
        let mut rest = self.data.as_slice();
        while let Some(h) = rest.get(..17) {
            let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let flags = u16::from_ne_bytes([h[6], h[7]]);
            if flags & NLM_F_REQUEST != 0 {
                out.push(Request {
                    kind: u16::from_ne_bytes([h[4], h[5]]),
                    flags,
                    cmd: h[16],
                });
            }
            let step = (len + 3) & !3;
            match rest.get(step..) {
                Some(r) if step >= 16 => rest = r,
                _ => break,
            }
        }
        out
    }
}

/// Hex of `data`, lower case, no separators.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
