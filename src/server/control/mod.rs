//! The control interface, in a process of its own (forked and respawned by
//! the master like the timer process): JSON-RPC 2.0 on a Unix socket of
//! mode 0600 (`rpc.rs` framing, `methods.rs` and `ul.rs` the methods),
//! SER's FIFO on a named pipe (`fifo/`), with `metrics_port` Prometheus'
//! text format over HTTP (`prometheus.rs`), and the requests it starts
//! itself as a UAC (`uac/`). It reads and edits shared memory only;
//! nothing it receives reaches a worker's packet path.

mod blocklist;
mod ds;
pub mod fifo;
mod htable;
pub mod methods;
mod pike;
mod pl;
pub mod prometheus;
pub mod rpc;
pub mod rpcfifo;
mod serve;
mod streams;
pub mod uac;
mod ul;

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::cfg::Config;
use crate::cfg::ast::RouteKind;
use crate::server::shared::Shared;

/// The listening sockets and the FIFO, bound and created by the master
/// before any fork so a respawned control process takes them over.
pub struct Listeners {
    pub unix: Option<UnixListener>,
    pub unix_path: Option<PathBuf>,
    pub metrics: Option<TcpListener>,
    pub fifo: Option<PathBuf>,
    /// Kamailio's jsonrpcs FIFO (`kamctl`'s), when the config loads it.
    pub rpc_fifo: Option<PathBuf>,
}

impl Listeners {
    /// The control socket at `ctl` (if any), `/metrics` on `metrics_port`,
    /// the FIFO at `fifo` with its mode.
    pub fn bind(
        ctl: Option<&Path>,
        metrics_port: Option<u16>,
        fifo: Option<(&Path, u32)>,
        rpc_fifo: Option<(&Path, u32)>,
    ) -> io::Result<Listeners> {
        let unix = ctl.map(bind_unix).transpose()?;
        let metrics = match metrics_port {
            Some(port) => Some(
                TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| io::Error::new(e.kind(), format!("metrics_port {port}: {e}")))?,
            ),
            None => None,
        };
        if let Some((path, mode)) = fifo {
            fifo::create(path, mode)?;
        }
        // kamctl's FIFO is a convenience: one that cannot be made (no
        // right to Kamailio's run directory, say) is said, not fatal.
        let rpc_fifo = rpc_fifo.filter(|(path, mode)| {
            // Kamailio's run directory may not exist where it never ran.
            let made = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| fifo::create(path, *mode));
            if let Err(e) = &made {
                log::error!(
                    "jsonrpcs fifo {}: {e}; kamctl will not reach this server",
                    path.display()
                );
            }
            made.is_ok()
        });
        Ok(Listeners {
            unix,
            unix_path: ctl.map(Path::to_path_buf),
            metrics,
            fifo: fifo.map(|(p, _)| p.to_path_buf()),
            rpc_fifo: rpc_fifo.map(|(p, _)| p.to_path_buf()),
        })
    }
}

fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    // A socket file left by a server that died is in the way; anything
    // else at that path is not ours to remove.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("ctl_socket {}: exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "ctl_socket {}: another server answers there",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let unix = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("ctl_socket {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(unix)
}

/// The control process's body.
pub fn run(
    shared: &Shared,
    config: &Config,
    config_path: Option<PathBuf>,
    ds_params: Option<crate::modules::dispatcher::runtime::DsParams>,
    uac: Option<uac::UacSetup>,
    started: u64,
    l: &Listeners,
) -> ! {
    let mut ctl = methods::Control {
        shared,
        config_path,
        started,
        ul_tables: crate::modules::usrloc::tables(&config.program),
        ht_tables: crate::modules::htable::tables(config).unwrap_or_default(),
        ul: crate::modules::usrloc::Params::from_config(config).unwrap_or_default(),
        ds_params,
        config: Some(config),
    };
    // event_route[tm:local-request]: the script runs here, on each request
    // the UAC sends, with a worker of this process's own as its host (its
    // socket, on the UAC's address, sends nothing). Declared before the
    // engine, which holds it.
    let local_route = config
        .program
        .route(RouteKind::Event, Some(crate::cfg::ast::LOCAL_REQUEST))
        .is_some();
    let vm = crate::script::Vm::new(config);
    let host_socket: Vec<std::net::UdpSocket> = match (&uac, local_route) {
        (Some(u), true) => std::net::UdpSocket::bind((u.local.ip(), 0))
            .map_err(|err| log::error!("control: event_route[tm:local-request]'s socket: {err}"))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let slot = uac.as_ref().map(|u| u.slot);
    let mut engine = uac.and_then(|u| match uac::Engine::new(u.local, u.timers) {
        Ok(e) => Some(e),
        Err(e) => {
            log::error!("control: the UAC's socket on {}: {e}", u.local.ip());
            None
        }
    });
    if let (Some(e), Some(slot), false) = (&mut engine, slot, host_socket.is_empty()) {
        let mut host = crate::server::worker::Worker::new(slot, config, shared, &host_socket, &vm);
        e.on_local_request(Box::new(move |text, from, to| {
            host.local_request(text, from, to)
        }));
    }
    let fifo = l.fifo.as_deref().and_then(|p| match fifo::Fifo::open(p) {
        Ok(f) => Some(f),
        Err(e) => {
            log::error!("fifo {}: {e}", p.display());
            None
        }
    });
    let rpc_fifo = l
        .rpc_fifo
        .as_deref()
        .and_then(|p| match rpcfifo::RpcFifo::open(p) {
            Ok(f) => Some(f),
            Err(e) => {
                log::error!("jsonrpcs fifo {}: {e}", p.display());
                None
            }
        });
    serve::run(&mut ctl, engine, (fifo, rpc_fifo), l)
}
