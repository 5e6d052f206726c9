//! The packet path's promise: framing a ~900-byte INVITE and reading what a
//! proxy needs allocates nothing. A counting global allocator proves it;
//! allocations are counted on the test's own thread.

mod counting;

use rser::sip::Message;

const INVITE: &[u8] = include_bytes!("../src/sip/testdata/invite.sip");

#[test]
fn parsing_an_invite_and_reading_what_a_proxy_needs_allocates_nothing() {
    assert!((850..=1000).contains(&INVITE.len()));
    let before = counting::allocations();
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
    let after = counting::allocations();
    assert_eq!(after - before, 0, "the parse path allocated");
}
