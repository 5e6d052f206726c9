//! Databases for the tests: a database of the test's own on the local
//! MariaDB or PostgreSQL (tests/setup.sh starts them with a user `rser`),
//! Kamailio's own table scripts run in it, and a gate between rser and
//! the server that a test closes and opens again (the server gone and
//! back, without stopping the server other tests share).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rser::db::DbUrl;
use rser::db::conn::Conn;

pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The servers: the URL scheme and its default port.
pub const SERVERS: [(&str, u16); 2] = [("mysql", 3306), ("postgres", 5432)];

/// A database of the test's own on `server` ("mysql" or "postgres"),
/// dropped when this goes.
pub struct Scratch {
    admin: Conn,
    pub name: String,
    pub server: &'static str,
    pub url: DbUrl,
}

impl Scratch {
    pub fn new(server: &'static str, tag: &str) -> Scratch {
        let name = format!("rser_{tag}_{}", std::process::id());
        let admin_db = if server == "mysql" {
            "mysql"
        } else {
            "postgres"
        };
        let admin_url =
            DbUrl::parse(&format!("{server}://rser:rser@127.0.0.1/{admin_db}")).unwrap();
        let mut admin = Conn::open(&admin_url, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e} (run `bash tests/setup.sh`)"));
        let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {name}"));
        admin.batch(&format!("CREATE DATABASE {name}")).unwrap();
        let url = DbUrl::parse(&format!("{server}://rser:rser@127.0.0.1/{name}")).unwrap();
        Scratch {
            admin,
            name,
            server,
            url,
        }
    }

    /// The URL with its password, for a config.
    pub fn url_text(&self) -> String {
        self.url_via(None)
    }

    /// The URL through another address (a [`Gate`]).
    pub fn url_via(&self, addr: Option<SocketAddr>) -> String {
        let at = addr.map_or("127.0.0.1".to_string(), |a| a.to_string());
        format!("{}://rser:rser@{at}/{}", self.server, self.name)
    }

    pub fn conn(&self) -> Conn {
        Conn::open(&self.url, TIMEOUT).unwrap()
    }

    /// Runs Kamailio's own `*-create.sql` scripts (Debian's
    /// kamailio-mysql-modules / kamailio-postgres-modules) for `scripts`.
    pub fn kamailio_tables(&self, scripts: &[&str]) {
        let mut c = self.conn();
        let dir = format!("/usr/share/kamailio/{}", self.server);
        for script in std::iter::once(&"standard").chain(scripts) {
            let path = format!("{dir}/{script}-create.sql");
            let sql = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (run `bash tests/setup.sh`)"));
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                c.batch(stmt)
                    .unwrap_or_else(|e| panic!("{path}: {stmt}: {e}"));
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch(&format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// A TCP gate on 127.0.0.1 in front of `target`: open, it relays every
/// connection; closed, it cuts the connections it carries and drops new
/// ones at once (a server stopped, as its clients see it).
pub struct Gate {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Gate {
    pub fn new(target: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let quit = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, q, l) = (open.clone(), quit.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if q.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection end
                }
                let Ok(server) = TcpStream::connect_timeout(&target, TIMEOUT) else {
                    continue;
                };
                let mut held = l.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        held.push(c);
                    }
                }
                drop(held);
                relay(client.try_clone().unwrap(), server.try_clone().unwrap());
                relay(server, client);
            }
        });
        Gate {
            addr,
            open,
            quit,
            live,
        }
    }

    /// The server gone: every relayed connection cut, new ones dropped.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        self.close();
        let _ = TcpStream::connect_timeout(&self.addr, TIMEOUT);
    }
}

/// Copies one direction until either side ends.
fn relay(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
