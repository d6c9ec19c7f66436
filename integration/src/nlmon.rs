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

fn open_packet_socket(ifname: &str) -> Result<Capture, CmdError> {
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| CmdError(format!("if_nametoindex {ifname}: {e}")))?;
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
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain old data; zeroed is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
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

/// Hex of `data`, lower case, no separators.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
