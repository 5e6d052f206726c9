//! SER's FIFO control interface (`fifo="/tmp/ser_fifo"`, tm's seed): a
//! named pipe the master creates (mode `fifo_mode`, 0600 by default) and
//! the control process reads; each request is answered in the reply file
//! it names, in /tmp as SER assumed. Framing is `frame.rs`, the commands
//! `commands.rs`.
//!
//! The pipe is read without blocking, so a writer that stops mid-request
//! holds up nothing: when every writer has closed it, what it left is
//! refused and the pipe is opened again; a request left unfinished is
//! refused after `frame::IDLE_MS`. Reply files are written without
//! blocking too: a reader that never reads loses its reply, the server
//! does not wait.

pub mod commands;
pub mod frame;

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use frame::{Event, Framer};

/// Where reply files are (SER's FIFO_DIR).
pub const REPLY_DIR: &str = "/tmp";
/// Longest a reply is given to be written (a reader that is not reading).
const REPLY_TIME: Duration = Duration::from_millis(500);
/// Largest reply written.
const MAX_REPLY: usize = 1 << 20;

/// Creates the named pipe (in the master, before any fork): a pipe
/// already there is taken over, anything else at the path is an error.
pub fn create(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("fifo {}: exists and is not a named pipe", path.display()),
            ));
        }
        Err(_) => nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| io::Error::other(format!("fifo {}: {e}", path.display())))?,
    }
    // The umask must not decide who may write commands.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| io::Error::new(e.kind(), format!("fifo {}: {e}", path.display())))
}

/// A named pipe the control process reads, whatever its framing.
pub struct Pipe {
    path: PathBuf,
    file: File,
}

fn open_read(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

impl Pipe {
    pub fn open(path: &Path) -> io::Result<Pipe> {
        Ok(Pipe {
            path: path.to_path_buf(),
            file: open_read(path)?,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Reads what the writers wrote (bounded per call), each piece to
    /// `got`; at the end of every writer, `got(None)`, and the pipe is
    /// opened again (a fresh read end waits for the next writer instead
    /// of reporting the end again).
    pub fn read(&mut self, mut got: impl FnMut(Option<&[u8]>)) {
        let mut buf = [0u8; 8192];
        for _ in 0..64 {
            match self.file.read(&mut buf) {
                Ok(0) => {
                    got(None);
                    match open_read(&self.path) {
                        Ok(f) => self.file = f,
                        Err(e) => log::error!("fifo {}: reopen: {e}", self.path.display()),
                    }
                    return;
                }
                Ok(n) => got(Some(&buf[..n])),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// SER's FIFO as the control process reads it.
pub struct Fifo {
    pipe: Pipe,
    pub framer: Framer,
}

impl Fifo {
    pub fn open(path: &Path) -> io::Result<Fifo> {
        Ok(Fifo {
            pipe: Pipe::open(path)?,
            framer: Framer::default(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.pipe.fd()
    }

    /// Frames what the writers wrote into requests (`out`).
    pub fn on_readable(&mut self, now: u64, out: &mut Vec<Event>) {
        let framer = &mut self.framer;
        self.pipe.read(|piece| match piece {
            Some(bytes) => framer.feed(bytes, now, out),
            None => framer.end_of_writers(out),
        });
    }
}

/// The reply file a request names: a plain name in /tmp (SER refused any
/// name with '/', '.' or '\\' in it: no directory changes).
pub fn reply_path(name: &str) -> Result<Option<PathBuf>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.len() > 128 || name.contains(['/', '.', '\\']) || name.chars().any(char::is_control) {
        return Err(format!("forbidden reply file name '{name}'"));
    }
    Ok(Some(Path::new(REPLY_DIR).join(name)))
}

/// Writes a reply into `path`: a named pipe its client made (opened
/// without blocking; a pipe nobody reads yet is retried briefly, as
/// SER did), or else a file of ours (created mode 0600; never through a
/// symbolic link, never one another user owns).
pub fn write_reply(path: &Path, text: &str) -> io::Result<()> {
    let text = &text.as_bytes()[..text.len().min(MAX_REPLY)];
    let deadline = Instant::now() + REPLY_TIME;
    let mut file = loop {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                    .open(path)
                {
                    Ok(f) => break f,
                    // ENXIO: no reader yet.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(m) if m.file_type().is_file() => {
                // SAFETY: geteuid has no preconditions.
                if m.uid() != unsafe { libc::geteuid() } {
                    return Err(io::Error::new(
                        ErrorKind::PermissionDenied,
                        "the reply file belongs to another user",
                    ));
                }
                break std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    "not a file or a named pipe",
                ));
            }
            Err(_) => {
                break std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)?;
            }
        }
    };
    let mut rest = text;
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Answers to the reply file a request named (logged when it cannot be
/// written, or when it named none).
pub fn reply(name: &str, text: &str) {
    match reply_path(name) {
        Ok(p) => reply_to(p.as_deref(), text),
        Err(e) => log::warn!("fifo: {e}"),
    }
}

/// [`reply`] to a reply file already found.
pub fn reply_to(path: Option<&Path>, text: &str) {
    match path {
        Some(p) => {
            if let Err(e) = write_reply(p, text) {
                log::warn!("fifo: reply file {}: {e}", p.display());
            }
        }
        None => log::info!("fifo: a request named no reply file: {}", text.trim_end()),
    }
}
