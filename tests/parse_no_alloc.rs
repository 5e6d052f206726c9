//! The packet path's promise: framing a ~900-byte INVITE and reading what a
//! proxy needs allocates nothing. A counting global allocator proves it;
//! this file holds one test so no other thread allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rser::sip::Message;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &[u8] = include_bytes!("../src/sip/testdata/invite.sip");

#[test]
fn parsing_an_invite_and_reading_what_a_proxy_needs_allocates_nothing() {
    assert!((850..=1000).contains(&INVITE.len()));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        let msg = Message::parse(INVITE).expect("sample INVITE parses");
        let ruri = msg.ruri().expect("Request-URI");
        let branch = msg.top_via().expect("Via").branch;
        let to_tag = msg.to().expect("To").tag;
        let call_id = msg.call_id().expect("Call-ID");
        let cseq = msg.cseq().expect("CSeq").number;
        let max_forwards = msg.max_forwards().expect("Max-Forwards");
        std::hint::black_box((ruri, branch, to_tag, call_id, cseq, max_forwards));
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "the parse path allocated");
}
