//! Stream transports: TCP (TLS is to come over the same pieces). One
//! connection as its worker drives it (`conn.rs`), the shared table of
//! connections (`conns.rs`), the workers' hand-off queues (`handoff.rs`)
//! and a worker's stream side over them (`endpoint.rs`: one epoll set,
//! accepting, reading, sending here or handing off, opening); the framing
//! of SIP on a stream is `sip::stream`.
//!
//! The design (no process sits on the path of every connection, unlike
//! Kamailio's TCP main process):
//! - Each worker listens on its own SO_REUSEPORT socket per `tcp:`/`tls:`
//!   listen address, so the kernel spreads new connections over the
//!   workers; a worker owns the connections it accepted or opened (the
//!   only process that reads or writes their sockets), in its own poll
//!   set next to the UDP socket, each with a `sip::stream::StreamBuf`
//!   and a bounded output buffer.
//! - `conns.rs` says, in shared memory, who owns the connection to a
//!   peer (and its RFC 5923 aliases). A worker that must send on a
//!   connection it does not own (a reply whose request another worker
//!   read, a request to a registered phone's connection) hands the bytes
//!   to the owner through the owner's queue in shared memory (a
//!   `rser_shm::Ring`) and wakes it with its eventfd; with no connection,
//!   it opens one itself and owns it.
//! - A worker that dies takes its connections with it: the master drops
//!   its entries (`Conns::remove_owner`), the peers reconnect to any
//!   other worker, and the respawned worker starts with none.
//! - TLS is rustls over the same connections, its sessions in the owning
//!   worker's memory only.

pub mod conn;
pub mod conns;
pub mod endpoint;
pub mod handoff;
pub mod tls;

/// Messages a worker's hand-off queue holds before a sender is refused:
/// this many, or fewer when shared memory is short (no fewer than
/// [`MIN_HANDOFF_CELLS`]).
const HANDOFF_CELLS: usize = 64;
const MIN_HANDOFF_CELLS: usize = 8;
/// The largest message handed to another worker to send (a larger one,
/// rare, is refused and counted).
pub const HANDOFF_BYTES: usize = 8 * 1024;

/// The stream transports' tables in shared memory, carved when a `tcp:`
/// address is listened on.
pub struct Streams {
    pub conns: conns::Conns,
    pub handoff: handoff::Handoff,
    /// Bumped by `tls.reload`: each worker reads the certificate files
    /// again when it sees it change.
    tls_generation: rser_shm::Slice<std::sync::atomic::AtomicU32>,
}

impl Streams {
    /// Room for `max_connections` connections (and as many aliases), and
    /// a hand-off queue for each of `slots` processes, their cells fitting
    /// in half of the `left` bytes of shared memory there are after the
    /// table.
    pub fn carve(
        carver: &mut rser_shm::Carver<'_>,
        (max_connections, per_source): (usize, u32),
        slots: usize,
        size: usize,
    ) -> std::io::Result<Streams> {
        let short = |what: &str| {
            std::io::Error::other(format!(
                "shared memory too small for {what} (give more with -m)"
            ))
        };
        let max = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let conns = conns::Conns::carve(carver, max_connections * 2, max, per_source)
            .ok_or_else(|| short("tcp_max_connections"))?;
        let left = size.saturating_sub(carver.used());
        let cells = (left / 2 / (slots.max(1) * (HANDOFF_BYTES + 64))).min(HANDOFF_CELLS);
        if cells < MIN_HANDOFF_CELLS {
            return Err(short("the TCP hand-off queues"));
        }
        let handoff = handoff::Handoff::carve(carver, slots, cells, HANDOFF_BYTES)?;
        let tls_generation = carver
            .slice(1, |_| std::sync::atomic::AtomicU32::new(0))
            .ok_or_else(|| short("the TLS reload counter"))?;
        Ok(Streams {
            conns,
            handoff,
            tls_generation,
        })
    }

    /// `tls.reload`: the new generation every worker is to load.
    pub fn reload_tls(&self) -> u32 {
        self.tls_generation[0].fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    }

    /// The generation of TLS files to load.
    pub fn tls_generation(&self) -> u32 {
        self.tls_generation[0].load(std::sync::atomic::Ordering::Acquire)
    }
}
