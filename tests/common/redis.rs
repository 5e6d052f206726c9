//! A redis-server of the test's own on an ephemeral 127.0.0.1 port (no
//! persistence, its files in a temporary directory), killed by its pid
//! when the handle goes. tests/setup.sh installs Redis where it is
//! missing.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Child,
    pub addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Redis {
    pub fn start() -> Redis {
        // A port the kernel just gave out, freed for redis-server (tried
        // again should another process take it first).
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let dir = super::temp_dir(&format!("redis-{port}"));
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (run `bash tests/setup.sh`)");
            let mut r = Redis {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = r.child.try_wait() {
                    break; // the port was taken: another one
                }
                if TcpStream::connect(r.addr).is_ok() {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = r.child.kill();
        }
        panic!("redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
