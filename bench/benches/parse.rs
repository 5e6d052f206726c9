//! Parse a ~900-byte INVITE and read what a proxy needs: Request-URI, top
//! Via branch, To tag, Call-ID, CSeq and Max-Forwards (issue 2's figure).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rser::sip::Message;

const INVITE: &[u8] = include_bytes!("../../src/sip/testdata/invite.sip");

fn parse_invite(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Bytes(INVITE.len() as u64));
    group.bench_function("parse INVITE", |b| {
        b.iter(|| {
            let msg = Message::parse(std::hint::black_box(INVITE)).unwrap();
            let ruri_host = msg.ruri().unwrap().host;
            let branch = msg.top_via().unwrap().branch;
            let to_tag = msg.to().unwrap().tag;
            let call_id = msg.call_id().unwrap();
            let cseq = msg.cseq().unwrap().number;
            let mf = msg.max_forwards().unwrap();
            std::hint::black_box((ruri_host, branch, to_tag, call_id, cseq, mf));
        })
    });
    group.bench_function("frame INVITE only", |b| {
        b.iter(|| {
            let msg = Message::parse(std::hint::black_box(INVITE)).unwrap();
            std::hint::black_box(msg.headers().len());
        })
    });
    group.finish();
}

criterion_group!(benches, parse_invite);
criterion_main!(benches);
