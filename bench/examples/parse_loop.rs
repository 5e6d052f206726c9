//! Parses the sample INVITE N times (default 10,000) and reads what a proxy
//! needs: a steady workload for `valgrind --tool=callgrind`, whose
//! instruction counts do not depend on what else the machine is doing.
//!
//!     cargo build --release -p rser-bench --example parse_loop
//!     valgrind --tool=callgrind target/release/examples/parse_loop 10000

use rser::sip::Message;

const INVITE: &[u8] = include_bytes!("../../src/sip/testdata/invite.sip");

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut acc = 0u64;
    for _ in 0..n {
        // By reference, as the worker has it (never moved).
        acc += Message::with_parsed(std::hint::black_box(INVITE), |parsed| {
            let msg = parsed.expect("sample parses");
            let ruri = msg.ruri().expect("Request-URI");
            let branch = msg.top_via().expect("Via").branch.map_or(0, <[u8]>::len);
            let to_tag = msg.to().expect("To").tag.map_or(0, <[u8]>::len);
            let call_id = msg.call_id().expect("Call-ID").len();
            let cseq = msg.cseq().expect("CSeq").number;
            let mf = msg.max_forwards().expect("Max-Forwards").unwrap_or(0);
            (ruri.raw.len() + branch + to_tag + call_id) as u64 + u64::from(cseq) + u64::from(mf)
        });
    }
    println!("{acc}");
}
