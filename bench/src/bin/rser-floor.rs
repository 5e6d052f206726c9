//! rser-floor: the machine's floor for a UDP proxy. It forwards datagrams
//! in batches and parses nothing: whatever comes from `--to` goes back to
//! the last other source, everything else goes to `--to`. A proxy can do
//! no better than this on the same sockets, so `bench/compare.sh` runs the
//! `forward` scenario through it to show how close rser gets.
//! IPv4 only (the last source is kept in one atomic word).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use rser::server::udp::{Outbox, RxBatch};

#[derive(Parser)]
#[command(version, about = "A batched UDP forwarder that parses nothing")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:5060")]
    listen: SocketAddrV4,
    #[arg(long, default_value = "127.0.0.1:5070")]
    to: SocketAddrV4,
    /// Threads reading the one socket, as a proxy's workers do.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn encode(a: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port())
}

fn decode(v: u64) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(((v >> 16) as u32).into(), v as u16))
}

fn main() {
    let args = Args::parse();
    let sock = match UdpSocket::bind(args.listen) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("rser-floor: cannot bind {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let r = socket2::SockRef::from(&*sock);
    let _ = r.set_recv_buffer_size(8 << 20);
    let _ = r.set_send_buffer_size(8 << 20);
    let last = Arc::new(AtomicU64::new(0));
    let to = SocketAddr::V4(args.to);
    let threads: Vec<_> = (0..args.workers.clamp(1, 64))
        .map(|_| {
            let (sock, last) = (Arc::clone(&sock), Arc::clone(&last));
            std::thread::spawn(move || {
                let mut rx = RxBatch::new();
                let mut out = Outbox::new();
                loop {
                    let Ok(n) = rx.recv(sock.as_raw_fd(), false) else {
                        continue;
                    };
                    for k in 0..n {
                        let (Some(data), Some(SocketAddr::V4(src))) = rx.get(k) else {
                            continue;
                        };
                        let dest = if SocketAddr::V4(src) == to {
                            match last.load(Ordering::Relaxed) {
                                0 => continue,
                                v => decode(v),
                            }
                        } else {
                            last.store(encode(src), Ordering::Relaxed);
                            to
                        };
                        out.push(0, dest).extend_from_slice(data);
                    }
                    out.flush(
                        std::slice::from_ref(&*sock),
                        &mut rser::server::udp::NoStreams,
                    );
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
