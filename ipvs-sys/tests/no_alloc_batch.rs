//! Encoding with the message-layer API (`BatchEncoder`, `encode_request_into`)
//! into a buffer that already has room allocates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipvs_sys::*;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCS.load(Ordering::Relaxed) - before)
}

#[test]
fn batch_encoding_does_not_allocate() {
    let svc = ServiceAttrs::addr_key(Protocol::TCP, "[2001:db8::10]:443".parse().unwrap())
        .with_config("wlc", ServiceFlags::PERSISTENT, 300);
    let msgs: Vec<IpvsMessage> = (0..300u16)
        .map(|i| {
            let dest = DestAttrs::key_of(std::net::SocketAddr::new(
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i)),
                443,
            ))
            .with_config(ForwardMethod::TUNNEL, u32::from(i));
            IpvsMessage::new_dest(svc.key(), dest)
        })
        .chain([
            IpvsMessage::new_service(svc.clone()),
            IpvsMessage::set_config(Some(900), Some(120), Some(300)),
            IpvsMessage::new_daemon(DaemonAttrs {
                state: Some(DaemonState::MASTER),
                mcast_ifn: Some("eth0".into()),
                sync_id: Some(1),
                ..Default::default()
            }),
        ])
        .collect();

    let mut batch = BatchEncoder::with_capacity(0x1c, 1, 256 * 1024);
    let ((), n) = count(|| {
        for m in &msgs {
            batch.push(m).unwrap();
        }
    });
    assert_eq!(batch.len(), msgs.len());
    assert_eq!(
        n,
        0,
        "{n} allocations while encoding {} messages",
        msgs.len()
    );

    let mut slice = vec![0u8; 4096];
    let (len, n) = count(|| encode_request_into(&mut slice, &msgs[0], 0x1c, 1, 5).unwrap());
    assert!(len > 0);
    assert_eq!(n, 0);

    // The counter works: decoding (which builds Strings) allocates.
    let (_, n) = count(|| decode_replies(batch.as_bytes(), 0x1c).unwrap());
    assert!(n > 0);
}
