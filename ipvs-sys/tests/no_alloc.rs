//! Encoding a batch allocates nothing per message: requests are written straight into
//! one buffer. Checked with a counting global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ipvs_sys::transport::AckMode;
use ipvs_sys::transport::exchange::encode_chunk;
use ipvs_sys::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn encoding_a_batch_allocates_nothing_per_message() {
    let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap()).with_config(
        "wlc",
        ServiceFlags::EMPTY,
        0,
    );
    let mut msgs = vec![IpvsMessage::new_service(svc.clone())];
    for port in 0..1000u16 {
        let d = DestAttrs::key_of(([10, 0, 0, 1], port).into()).with_config(ForwardMethod::MASQ, 1);
        msgs.push(IpvsMessage::new_dest(svc.key(), d));
    }
    let mut buf = Vec::with_capacity(1 << 20);
    // Warm up once (nothing should be lazily allocated, but be fair).
    encode_chunk(
        &mut buf,
        &msgs,
        0x20,
        1,
        msgs.len(),
        1 << 20,
        AckMode::LastOfChunk,
    )
    .unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let n = encode_chunk(
        &mut buf,
        &msgs,
        0x20,
        1,
        msgs.len(),
        1 << 20,
        AckMode::LastOfChunk,
    )
    .unwrap();
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(n, msgs.len());
    assert_eq!(after - before, 0, "allocations while encoding {n} messages");
}
