//! The exec module: `exec_dset` and `exec_msg` run a shell command for a
//! message. A command is bounded in time (`time_to_kill`) and in output, so
//! a stuck or chatty program cannot hang the worker that runs it.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Most output `exec_dset` reads: a destination set is a few URIs.
pub const MAX_OUTPUT: usize = 16 * 1024;

/// `time_to_kill` when the script does not set it.
pub const DEFAULT_TIME_TO_KILL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum ExecError {
    Spawn(io::Error),
    Io(io::Error),
    /// Still running at `time_to_kill`; it was killed.
    Timeout,
    /// Wrote more than [`MAX_OUTPUT`]; it was killed.
    TooMuchOutput,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::Spawn(e) => write!(f, "cannot start /bin/sh: {e}"),
            ExecError::Io(e) => write!(f, "i/o with the command failed: {e}"),
            ExecError::Timeout => f.write_str("killed after time_to_kill"),
            ExecError::TooMuchOutput => write!(f, "killed after {MAX_OUTPUT} bytes of output"),
        }
    }
}

/// How a command runs.
pub struct Job<'a> {
    /// Shell command line (`/bin/sh -c`).
    pub command: &'a str,
    pub env: &'a [(&'a str, &'a str)],
    /// Written to the command's standard input, then closed.
    pub input: &'a [u8],
    /// Whether standard output is read (else it goes to /dev/null).
    pub capture: bool,
    pub time_to_kill: Duration,
}

pub struct Finished {
    pub status: ExitStatus,
    pub output: Vec<u8>,
}

/// Quotes a value for the shell, so a URI's `;`, `$` or `` ` `` are text.
pub fn shell_quote(s: &str, out: &mut String) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

pub fn run(job: &Job<'_>) -> Result<Finished, ExecError> {
    let deadline = Instant::now() + job.time_to_kill;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(job.command)
        .stdin(Stdio::piped())
        .stdout(if job.capture {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in job.env {
        cmd.env(k, v);
    }
    // A group of its own, so what the shell starts dies with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
    let result = pump(&mut child, job, deadline);
    match result {
        Ok(output) => match wait_until(&mut child, deadline) {
            Ok(Some(status)) => Ok(Finished { status, output }),
            Ok(None) => {
                kill(&mut child);
                Err(ExecError::Timeout)
            }
            Err(e) => {
                kill(&mut child);
                Err(ExecError::Io(e))
            }
        },
        Err(e) => {
            kill(&mut child);
            Err(e)
        }
    }
}

/// Kills the shell's whole process group (its pid is the group's id):
/// the commands it started too, not the shell alone.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the group this child leads; no memory is
        // touched.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Feeds standard input and drains standard output until both are done,
/// without blocking past the deadline.
fn pump(child: &mut Child, job: &Job<'_>, deadline: Instant) -> Result<Vec<u8>, ExecError> {
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    for fd in [
        stdin.as_ref().map(|s| s.as_fd()),
        stdout.as_ref().map(|s| s.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        let flags = OFlag::from_bits_truncate(
            fcntl(fd, FcntlArg::F_GETFL).map_err(|e| ExecError::Io(e.into()))?,
        );
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
            .map_err(|e| ExecError::Io(e.into()))?;
    }
    let mut written = 0;
    if job.input.is_empty() {
        stdin = None; // closes it
    }
    let mut output = Vec::new();
    let mut chunk = [0u8; 4096];
    while stdin.is_some() || stdout.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ExecError::Timeout);
        }
        let ms = left.as_millis().min(u128::from(u16::MAX)) as u16;
        let (can_write, can_read) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(s) = &stdin {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(s) = &stdout {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(ms.max(1))) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ExecError::Io(e.into())),
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            let w = stdin.is_some() && ready(&fds[0]);
            let r = stdout.is_some() && ready(&fds[fds.len() - 1]);
            (w, r)
        };
        if can_write {
            let s = stdin.as_mut().expect("polled");
            match s.write(&job.input[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The command closed its input early: not our error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => written = job.input.len(),
                Err(e) => return Err(ExecError::Io(e)),
            }
            if written >= job.input.len() {
                stdin = None;
            }
        }
        if can_read {
            let s = stdout.as_mut().expect("polled");
            match s.read(&mut chunk) {
                Ok(0) => stdout = None,
                Ok(n) => {
                    if output.len() + n > MAX_OUTPUT {
                        return Err(ExecError::TooMuchOutput);
                    }
                    output.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(ExecError::Io(e)),
            }
        }
    }
    Ok(output)
}

/// Waits for the exit, polling so the deadline holds.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut nap = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(command: &'a str, input: &'a [u8], secs: u64) -> Job<'a> {
        Job {
            command,
            env: &[("SRCIP", "192.0.2.1")],
            input,
            capture: true,
            time_to_kill: Duration::from_secs(secs),
        }
    }

    #[test]
    fn output_environment_and_input() {
        let f = run(&job("echo $SRCIP; cat", b"INVITE", 10)).unwrap();
        assert!(f.status.success());
        assert_eq!(f.output, b"192.0.2.1\nINVITE");
    }

    #[test]
    fn a_stuck_command_is_killed() {
        let start = Instant::now();
        let r = run(&job("sleep 30", b"", 1));
        assert!(matches!(r, Err(ExecError::Timeout)), "{r:?}", r = r.err());
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn what_the_shell_started_is_killed_with_it() {
        let file = std::env::temp_dir().join(format!("rser-exec-pgrp-{}", std::process::id()));
        let cmd = format!("sleep 30 & echo $! > {}; wait", file.display());
        let r = run(&job(&cmd, b"", 1));
        assert!(matches!(r, Err(ExecError::Timeout)));
        let pid: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        // Gone, or a zombie waiting for init: not running.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_string)
                });
            match state.as_deref() {
                None | Some("Z") | Some("X") => break,
                Some(s) => assert!(Instant::now() < deadline, "the shell's child is still {s}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn output_is_bounded() {
        let r = run(&job("yes sip:a@b", b"", 10));
        assert!(matches!(r, Err(ExecError::TooMuchOutput)));
    }

    #[test]
    fn a_command_that_ignores_its_input() {
        let big = vec![b'x'; 200_000];
        let f = run(&job("echo done", &big, 10)).unwrap();
        assert_eq!(f.output, b"done\n");
    }

    #[test]
    fn quoting() {
        let mut s = String::new();
        shell_quote("sip:a'$(x)@h", &mut s);
        assert_eq!(s, "'sip:a'\\''$(x)@h'");
        let f = run(&job(&format!("printf %s {s}"), b"", 10)).unwrap();
        assert_eq!(f.output, b"sip:a'$(x)@h");
    }
}
