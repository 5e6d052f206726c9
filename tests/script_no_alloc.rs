//! The VM's promise: running the seed's numbering plan (regex matches,
//! strip, forward decision) on a parsed INVITE allocates nothing once a
//! worker's buffers are warm; the rewritten URI reuses its buffer.
//! Allocations are counted on the test's own thread.

mod counting;

use rser::cfg::{self, program::Param, registry::Func, settings::Proto};
use rser::script::{Destination, Host, MsgCtx, ScriptState, Vm};
use rser::sip::Message;

struct Forwards(usize);

impl Host for Forwards {
    fn forward(&mut self, _: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32 {
        assert_eq!((dest.host.as_str(), dest.port), ("192.168.0.1", 5060));
        self.0 += 1;
        1
    }
    fn module(&mut self, _: &mut MsgCtx<'_, '_>, _: Func, _: &[Param]) -> i32 {
        1
    }
}

const INVITE: &[u8] = b"INVITE sip:15551234567@gw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9a83c1e0;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:15551234567@gw.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.101>\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn the_numbering_plan_allocates_nothing_per_message() {
    let config = cfg::load(include_str!("configs/seed/numbering-plan.cfg")).unwrap();
    let vm = Vm::new(&config);
    let main = config.program.main_route().unwrap();
    let src = "192.0.2.101:5060".parse().unwrap();
    let dst = "127.0.0.1:5060".parse().unwrap();
    let mut st = ScriptState::new();
    let mut host = Forwards(0);
    let msg = Message::parse(INVITE).unwrap();
    // Warm-up: the URI buffers and the regex caches are made once.
    for _ in 0..2 {
        let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
        vm.run(main, &mut ctx, &mut host);
    }
    let before = counting::allocations();
    for _ in 0..100 {
        let msg = Message::parse(INVITE).unwrap();
        let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
        let out = vm.run(main, &mut ctx, &mut host);
        assert_eq!(ctx.uri(), b"sip:5551234567@gw.example.com");
        std::hint::black_box(out);
    }
    let after = counting::allocations();
    assert_eq!(host.0, 102);
    assert_eq!(after - before, 0, "the script path allocated");
}
