//! A host that records what a script asked for, to test scripts without
//! sockets.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::cfg::program::{Param, Program};
use crate::cfg::registry::{Func, func_name};
use crate::cfg::settings::Proto;
use crate::cfg::{self, Config};
use crate::sip::Message;

use super::ctx::{MsgCtx, ScriptState, TextEdit};
use super::vm::{Destination, Host, Outcome, Vm};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A forward: the URI at that moment and `host:port/proto`.
    Forward { uri: String, to: String },
    /// A module action: its name, arguments, and the destination set then.
    Module {
        name: &'static str,
        args: Vec<String>,
        dset: Vec<String>,
    },
}

pub struct Recorder<'p> {
    pub events: Vec<Event>,
    /// What a module action returns, by its name (default 1).
    pub returns: HashMap<&'static str, i32>,
    prog: &'p Program,
}

impl<'p> Recorder<'p> {
    pub fn for_program(prog: &'p Program) -> Recorder<'p> {
        Recorder {
            events: Vec::new(),
            returns: HashMap::new(),
            prog,
        }
    }
}

impl Host for Recorder<'_> {
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32 {
        self.events.push(Event::Forward {
            uri: String::from_utf8_lossy(ctx.uri()).into_owned(),
            to: format!("{}:{}/{}", dest.host, dest.port, dest.proto.name()),
        });
        1
    }

    fn module(&mut self, ctx: &mut MsgCtx<'_, '_>, func: Func, args: &[Param]) -> i32 {
        let prog = self.prog;
        let args = args
            .iter()
            .map(|p| match p {
                Param::Int(n) => n.to_string(),
                Param::Str(s) => s.to_string(),
                Param::Fmt(f) => {
                    let mut out = Vec::new();
                    super::pv::format_into(f, ctx, &mut out);
                    String::from_utf8_lossy(&out).into_owned()
                }
                Param::Route(r) => prog.routes[*r as usize]
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .to_string(),
            })
            .collect();
        let mut dset = vec![String::from_utf8_lossy(ctx.uri()).into_owned()];
        dset.extend(
            ctx.branches()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        );
        self.events.push(Event::Module {
            name: func_name(func),
            args,
            dset,
        });
        self.returns.get(func.name()).copied().unwrap_or(1)
    }
}

/// Loads a config or panics with its errors.
pub fn config(src: &str) -> Config {
    match cfg::load(src) {
        Ok(c) => c,
        Err(errors) => panic!("config errors: {errors:#?}"),
    }
}

/// A request line plus the headers every test message needs.
pub fn request(method: &str, uri: &str) -> Vec<u8> {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         To: <{uri}>\r\n\
         From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example\r\n\
         CSeq: 314159 {method}\r\n\
         Contact: <sip:alice@192.0.2.10>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The result of running a route once.
pub struct Run {
    pub outcome: Outcome,
    pub events: Vec<Event>,
    /// The current URI at the end.
    pub uri: String,
    /// The textops edits the message carries at the end.
    pub edits: Vec<TextEdit>,
}

/// Runs route block `route` of `config` on `msg`, from `src`.
pub fn run_route(
    config: &Config,
    route: u32,
    msg: &[u8],
    src: &str,
    returns: &[(&'static str, i32)],
) -> Run {
    let msg = Message::parse(msg).expect("test message parses");
    let src: SocketAddr = src.parse().unwrap();
    let dst: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut st = ScriptState::new();
    let mut ctx = MsgCtx::new(&msg, src, dst, Proto::Udp, &mut st);
    let vm = Vm::new(config);
    let mut rec = Recorder::for_program(&config.program);
    rec.returns = returns.iter().copied().collect();
    let outcome = vm.run(route, &mut ctx, &mut rec);
    Run {
        outcome,
        events: rec.events,
        uri: String::from_utf8_lossy(ctx.uri()).into_owned(),
        edits: ctx.st.edits.clone(),
    }
}

/// Runs the main route of `config` on `msg`, from `src`.
pub fn run_with(config: &Config, msg: &[u8], src: &str, returns: &[(&'static str, i32)]) -> Run {
    let main = config.program.main_route().expect("main route");
    run_route(config, main, msg, src, returns)
}

pub fn run(config: &Config, method: &str, uri: &str) -> Run {
    run_with(config, &request(method, uri), "192.0.2.10:5060", &[])
}
