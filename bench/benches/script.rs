//! The seed's numbering-plan script (two regex matches on the URI,
//! strip(1), the forward decision) run by the VM on a parsed INVITE
//! (issue 3's figure), and the same with the parse included.

use criterion::{Criterion, criterion_group, criterion_main};
use rser::cfg::{self, program::Param, registry::Func, settings::Proto};
use rser::script::{Destination, Host, MsgCtx, ScriptState, Vm};
use rser::sip::Message;

const NUMBERING_PLAN: &str = include_str!("../../tests/configs/seed/numbering-plan.cfg");
const INVITE: &[u8] = include_bytes!("../../src/sip/testdata/invite.sip");

/// Takes the forward decision and does nothing with it.
struct Sink;

impl Host for Sink {
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32 {
        std::hint::black_box((ctx.uri(), dest));
        1
    }
    fn module(&mut self, _: &mut MsgCtx<'_, '_>, _: Func, _: &[Param]) -> i32 {
        1
    }
}

/// The sample INVITE addressed to a US number: the strip-and-gateway path.
fn us_invite() -> Vec<u8> {
    let text = String::from_utf8(INVITE.to_vec()).unwrap();
    let (first, rest) = text.split_once("\r\n").unwrap();
    let method_end = first.find(' ').unwrap();
    let version_start = first.rfind(' ').unwrap();
    format!(
        "{} sip:15551234567@gw.example.com{}\r\n{rest}",
        &first[..method_end],
        &first[version_start..]
    )
    .into_bytes()
}

fn numbering_plan(c: &mut Criterion) {
    let config = cfg::load(NUMBERING_PLAN).expect("seed script compiles");
    let vm = Vm::new(&config);
    let main = config.program.main_route().unwrap();
    let bytes = us_invite();
    let src = "192.0.2.10:5060".parse().unwrap();
    let dst = "127.0.0.1:5060".parse().unwrap();
    let mut st = ScriptState::new();
    let mut group = c.benchmark_group("script");
    let msg = Message::parse(&bytes).unwrap();
    {
        // The path measured: matched, stripped, forwarded.
        let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
        vm.run(main, &mut ctx, &mut Sink);
        assert_eq!(ctx.uri(), b"sip:5551234567@gw.example.com");
    }
    group.bench_function("numbering plan on a parsed INVITE", |b| {
        b.iter(|| {
            let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
            let out = vm.run(main, &mut ctx, &mut Sink);
            std::hint::black_box(out);
        })
    });
    group.bench_function("parse INVITE + numbering plan", |b| {
        b.iter(|| {
            let msg = Message::parse(std::hint::black_box(&bytes)).unwrap();
            let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
            let out = vm.run(main, &mut ctx, &mut Sink);
            std::hint::black_box(out);
        })
    });
    group.finish();
}

criterion_group!(benches, numbering_plan);
criterion_main!(benches);
