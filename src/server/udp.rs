//! UDP in batches: `recvmmsg` fills up to [`BATCH`] datagrams per system
//! call and `sendmmsg` sends everything a batch produced in one, since the
//! system call is the largest cost of a forwarded message on this machine
//! (shared/anchors/README.md). Buffers are allocated once per worker.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use crate::sip::limits::MAX_DATAGRAM;

pub use super::limits::BATCH;

/// Receive buffers: one byte more than the largest datagram, so a
/// truncated one is recognised by its length.
const RX_BUF: usize = MAX_DATAGRAM + 1;

fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    let s2: socket2::SockAddr = (*addr).into();
    // SAFETY: SockAddr's storage is a sockaddr_storage of len() valid bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            s2.as_ptr() as *const u8,
            ss as *mut _ as *mut u8,
            s2.len() as usize,
        );
    }
    s2.len()
}

/// A batch of received datagrams.
pub struct RxBatch {
    bufs: Vec<Box<[u8]>>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

impl RxBatch {
    pub fn new() -> RxBatch {
        let mut b = RxBatch {
            bufs: (0..BATCH)
                .map(|_| vec![0u8; RX_BUF].into_boxed_slice())
                .collect(),
            // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            iovs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            count: 0,
        };
        for i in 0..BATCH {
            b.iovs[i].iov_base = b.bufs[i].as_mut_ptr().cast();
            b.iovs[i].iov_len = RX_BUF;
        }
        b
    }

    /// Receives at least one datagram (blocking unless `nonblocking`), up
    /// to [`BATCH`]. Returns how many.
    pub fn recv(&mut self, fd: RawFd, nonblocking: bool) -> io::Result<usize> {
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let flags = libc::MSG_WAITFORONE | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: every header points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// Datagram `i` and its source; `None` for the payload when it was
    /// larger than a datagram may be (truncated).
    pub fn get(&self, i: usize) -> (Option<&[u8]>, Option<SocketAddr>) {
        let len = self.hdrs[i].msg_len as usize;
        let truncated = len > MAX_DATAGRAM || self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let data = (!truncated).then(|| &self.bufs[i][..len]);
        (data, to_socket_addr(&self.names[i]))
    }
}

impl Default for RxBatch {
    fn default() -> Self {
        RxBatch::new()
    }
}

/// Asks the kernel to queue the ICMP errors a socket's datagrams draw
/// (IP_RECVERR / IPV6_RECVERR): on an unconnected UDP socket that is the
/// only way to learn that a next hop's port is closed (ECONNREFUSED) or
/// its host unreachable, and so to end a branch at once.
pub fn enable_recv_errors(fd: RawFd, v6: bool) -> io::Result<()> {
    let (level, name) = match v6 {
        true => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
        false => (libc::IPPROTO_IP, libc::IP_RECVERR),
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid socket option value of the stated size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a receive failed only because an ICMP error is pending on the
/// socket (read it with [`read_errors`]).
pub fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN)
    )
}

/// One datagram an ICMP error came back for: where it went, the start of
/// it as the ICMP message quoted it (enough for its request line and top
/// Via), and the error.
#[derive(Debug)]
pub struct Refused {
    pub dest: SocketAddr,
    pub head: Vec<u8>,
    pub error: io::Error,
}

/// Bytes of a refused datagram kept: an ICMP error quotes at most 576
/// bytes (IPv4) of it anyway.
const REFUSED_HEAD: usize = 1024;
/// Errors read per call: the queue is bounded by the socket's buffer.
const REFUSED_PER_CALL: usize = 64;

/// Reads the socket's error queue without blocking (at most
/// [`REFUSED_PER_CALL`] entries) into `out`.
pub fn read_errors(fd: RawFd, out: &mut Vec<Refused>) {
    out.clear();
    let mut buf = [0u8; REFUSED_HEAD];
    let mut control = [0u64; 64];
    for _ in 0..REFUSED_PER_CALL {
        // SAFETY: all-zero is a valid sockaddr_storage / msghdr.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut h: libc::msghdr = unsafe { zeroed() };
        h.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = control.as_mut_ptr().cast();
        h.msg_controllen = size_of_val(&control);
        // SAFETY: every pointer in `h` is live and sized as stated.
        let n = unsafe { libc::recvmsg(fd, &mut h, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return; // empty (EAGAIN), or nothing more to learn
        }
        let Some(dest) = to_socket_addr(&name) else {
            continue;
        };
        let errno = extended_errno(&h).unwrap_or(libc::ECONNREFUSED);
        out.push(Refused {
            dest,
            head: buf[..(n as usize).min(buf.len())].to_vec(),
            error: io::Error::from_raw_os_error(errno),
        });
    }
}

/// The errno of the `sock_extended_err` in an error-queue message.
fn extended_errno(h: &libc::msghdr) -> Option<i32> {
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, within
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let kind = (*c).cmsg_type;
            if (level == libc::IPPROTO_IP && kind == libc::IP_RECVERR)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_RECVERR)
            {
                let ee = libc::CMSG_DATA(c).cast::<libc::sock_extended_err>();
                return Some(std::ptr::read_unaligned(ee).ee_errno as i32);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// A datagram the kernel refused (no route, ICMP unreachable), with the
/// label a module gave it, if any (tm: the branch whose request it was).
#[derive(Debug, Clone, Copy)]
pub struct SendFailure {
    pub tag: Option<u128>,
    pub dest: SocketAddr,
    pub error: io::ErrorKind,
}

/// Sends a message on a stream (TCP): from the worker's socket `sock`
/// (an index past its UDP sockets) to `dest`, with the label a module
/// gave it.
pub trait StreamSend {
    fn send(
        &mut self,
        sock: usize,
        dest: SocketAddr,
        bytes: &[u8],
        tag: Option<u128>,
    ) -> io::Result<()>;
}

/// No streams: a stream's socket index is not one.
pub struct NoStreams;

impl StreamSend for NoStreams {
    fn send(&mut self, _: usize, _: SocketAddr, _: &[u8], _: Option<u128>) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
}

/// Datagrams to send, collected while a batch is handled.
pub struct Outbox {
    bufs: Vec<Vec<u8>>,
    dests: Vec<SocketAddr>,
    /// Index of the socket to send each from.
    socks: Vec<usize>,
    /// The label a module gave each (`tag_last`).
    tags: Vec<Option<u128>>,
    len: usize,
    /// Indices of one socket's datagrams during a flush (reused).
    picked: Vec<usize>,
    /// What the last flushes could not send, until taken; at most one
    /// per datagram pushed.
    failures: Vec<SendFailure>,
    /// In the simulated-clock harness: flushes keep what they would send
    /// here instead, and refuse it for the addresses listed.
    capture: Option<Capture>,
    /// `sendmmsg`'s headers, set up once: a flush fills only the entries
    /// it sends (zeroing 6.6 KiB of them per flush was a tenth of a
    /// worker's instructions on a relay).
    scratch: Box<SendScratch>,
}

/// The addresses, buffers and headers of one `sendmmsg` call.
struct SendScratch {
    names: [libc::sockaddr_storage; BATCH],
    iovs: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
}

/// Datagrams a capturing outbox kept, by socket index and destination.
#[derive(Debug, Default)]
pub struct Capture {
    pub sent: Vec<(usize, SocketAddr, Vec<u8>)>,
    pub unreachable: Vec<SocketAddr>,
}

impl Capture {
    /// "Sends" a datagram: kept, or refused as the kernel would refuse it.
    fn send(&mut self, sock: usize, dest: SocketAddr, buf: &[u8]) -> io::Result<()> {
        if self.unreachable.contains(&dest) {
            return Err(io::ErrorKind::NetworkUnreachable.into());
        }
        self.sent.push((sock, dest, buf.to_vec()));
        Ok(())
    }
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            bufs: Vec::new(),
            dests: Vec::new(),
            socks: Vec::new(),
            tags: Vec::new(),
            len: 0,
            picked: Vec::new(),
            failures: Vec::new(),
            capture: None,
            // SAFETY: all-zero is valid for these C structs (null
            // pointers, no control data, no flags).
            scratch: Box::new(unsafe { zeroed() }),
        }
    }

    /// An outbox that sends nothing: every flush keeps its datagrams in
    /// [`Outbox::capture`] (the harness's network).
    pub fn capturing() -> Outbox {
        Outbox {
            capture: Some(Capture::default()),
            ..Outbox::new()
        }
    }

    pub fn capture(&mut self) -> Option<&mut Capture> {
        self.capture.as_mut()
    }

    /// A cleared buffer for the next datagram, to `dest` from socket `sock`.
    pub fn push(&mut self, sock: usize, dest: SocketAddr) -> &mut Vec<u8> {
        if self.len == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(2048));
            self.dests.push(dest);
            self.socks.push(sock);
            self.tags.push(None);
        }
        self.dests[self.len] = dest;
        self.socks[self.len] = sock;
        self.tags[self.len] = None;
        let b = &mut self.bufs[self.len];
        b.clear();
        self.len += 1;
        b
    }

    /// Labels the last push, so a failure to send it is reported with
    /// the label.
    pub fn tag_last(&mut self, tag: u128) {
        if let Some(i) = self.len.checked_sub(1) {
            self.tags[i] = Some(tag);
        }
    }

    /// The length of the last push's message so far.
    pub fn last_len(&self) -> usize {
        self.len.checked_sub(1).map_or(0, |i| self.bufs[i].len())
    }

    /// Takes back the last push (the message could not be built).
    pub fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Whether anything waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends the last push at once (not with the batch), to learn whether
    /// the kernel takes it; it leaves the outbox either way. A socket index
    /// past `sockets` is a stream's: `stream` sends it.
    pub fn send_last_now<S: AsRawFd>(
        &mut self,
        sockets: &[S],
        stream: &mut impl StreamSend,
    ) -> io::Result<()> {
        let Some(i) = self.len.checked_sub(1) else {
            return Ok(());
        };
        self.len = i;
        if let Some(c) = &mut self.capture {
            return c.send(self.socks[i], self.dests[i], &self.bufs[i]);
        }
        let Some(sock) = sockets.get(self.socks[i]) else {
            return stream.send(self.socks[i], self.dests[i], &self.bufs[i], self.tags[i]);
        };
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let namelen = from_socket_addr(&self.dests[i], &mut name);
        loop {
            // SAFETY: a live buffer and address of the stated lengths.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    self.bufs[i].as_ptr().cast(),
                    self.bufs[i].len(),
                    0,
                    (&name as *const libc::sockaddr_storage).cast(),
                    namelen,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Sends everything with `sendmmsg`, per socket, and what goes on a
    /// stream (a socket index past `sockets`) through `stream`; returns how
    /// many failed (each kept for [`Outbox::take_failures`]).
    pub fn flush<S: AsRawFd>(&mut self, sockets: &[S], stream: &mut impl StreamSend) -> usize {
        if self.capture.is_some() {
            return self.flush_captured();
        }
        let mut failed = 0;
        for i in 0..self.len {
            if self.socks[i] < sockets.len() {
                continue;
            }
            if let Err(e) = stream.send(self.socks[i], self.dests[i], &self.bufs[i], self.tags[i]) {
                log::debug!("send to tcp:{} failed: {e}", self.dests[i]);
                self.failures.push(SendFailure {
                    tag: self.tags[i],
                    dest: self.dests[i],
                    error: e.kind(),
                });
                failed += 1;
            }
        }
        let mut picked = std::mem::take(&mut self.picked);
        for (si, sock) in sockets.iter().enumerate() {
            picked.clear();
            picked.extend((0..self.len).filter(|&i| self.socks[i] == si));
            for chunk in picked.chunks(BATCH) {
                failed += self.send_chunk(sock.as_raw_fd(), chunk);
            }
        }
        self.picked = picked;
        self.len = 0;
        failed
    }

    fn flush_captured(&mut self) -> usize {
        let Some(c) = &mut self.capture else { return 0 };
        let mut failed = 0;
        for i in 0..self.len {
            if let Err(e) = c.send(self.socks[i], self.dests[i], &self.bufs[i]) {
                self.failures.push(SendFailure {
                    tag: self.tags[i],
                    dest: self.dests[i],
                    error: e.kind(),
                });
                failed += 1;
            }
        }
        self.len = 0;
        failed
    }

    /// The failures of the flushes since the last call.
    pub fn take_failures(&mut self, into: &mut Vec<SendFailure>) {
        into.clear();
        into.append(&mut self.failures);
    }

    fn send_chunk(&mut self, fd: RawFd, chunk: &[usize]) -> usize {
        // Every field a send reads is set here or stayed zero since `new`.
        let SendScratch { names, iovs, hdrs } = &mut *self.scratch;
        for (k, &i) in chunk.iter().enumerate() {
            let namelen = from_socket_addr(&self.dests[i], &mut names[k]);
            iovs[k].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovs[k].iov_len = self.bufs[i].len();
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = namelen;
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
        }
        let mut sent = 0;
        let mut failed = 0;
        while sent < chunk.len() {
            // SAFETY: headers point at live buffers and addresses.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[sent..].as_mut_ptr(),
                    (chunk.len() - sent) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the datagram that failed (e.g. unreachable) and go on.
                let i = chunk[sent];
                log::debug!("send to {} failed: {err}", self.dests[i]);
                self.failures.push(SendFailure {
                    tag: self.tags[i],
                    dest: self.dests[i],
                    error: err.kind(),
                });
                failed += 1;
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
        failed
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

/// The classic BPF program that picks the socket of an SO_REUSEPORT
/// group of `workers` for each datagram: a random one (`SKF_AD_RANDOM`),
/// or by the CPU that received it (`SKF_AD_CPU`); `ret A` is the index.
/// An index past the group (a worker being restarted) makes the kernel
/// fall back to its hash.
pub fn balance_program(workers: u32, by_cpu: bool) -> [libc::sock_filter; 3] {
    const SKF_AD_OFF: i32 = -0x1000;
    const SKF_AD_CPU: i32 = 36;
    const SKF_AD_RANDOM: i32 = 56;
    let what = if by_cpu { SKF_AD_CPU } else { SKF_AD_RANDOM };
    [
        // BPF_LD | BPF_W | BPF_ABS of an ancillary word.
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: (SKF_AD_OFF + what) as u32,
        },
        // BPF_ALU | BPF_MOD | BPF_K.
        libc::sock_filter {
            code: 0x94,
            jt: 0,
            jf: 0,
            k: workers.max(1),
        },
        // BPF_RET | BPF_A.
        libc::sock_filter {
            code: 0x16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ]
}

/// Attaches `balance_program` to the SO_REUSEPORT group of socket `fd`.
pub fn attach_balance(fd: std::os::fd::RawFd, workers: u32, by_cpu: bool) -> std::io::Result<()> {
    let prog = balance_program(workers, by_cpu);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid program the kernel copies during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod balance_tests {
    #[test]
    fn balance_programs_pick_an_index_below_the_workers() {
        let p = super::balance_program(8, false);
        assert_eq!((p[0].code, p[0].k), (0x20, (-0x1000i32 + 56) as u32));
        assert_eq!((p[1].code, p[1].k), (0x94, 8));
        assert_eq!(p[2].code, 0x16);
        assert_eq!(
            super::balance_program(0, true)[1].k,
            1,
            "never a modulo by 0"
        );
        assert_eq!(
            super::balance_program(2, true)[0].k,
            (-0x1000i32 + 36) as u32
        );
    }
}

#[cfg(test)]
mod outbox_tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::{NoStreams, Outbox};

    /// The headers are set up once and reused: a flush of fewer datagrams
    /// after a larger one, to other addresses, sends exactly its own.
    #[test]
    fn a_smaller_flush_after_a_larger_sends_only_its_own_datagrams() {
        let from = [UdpSocket::bind("127.0.0.1:0").unwrap()];
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let mut out = Outbox::new();
        for i in 0..3 {
            out.push(0, a.local_addr().unwrap())
                .extend_from_slice(format!("first {i}").as_bytes());
        }
        assert_eq!(out.flush(&from, &mut NoStreams), 0);
        out.push(0, b.local_addr().unwrap())
            .extend_from_slice(b"second, a longer datagram");
        assert_eq!(out.flush(&from, &mut NoStreams), 0);
        let mut buf = [0u8; 64];
        for i in 0..3 {
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("first {i}").as_bytes());
        }
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"second, a longer datagram");
        // Nothing more went anywhere.
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        assert!(a.recv(&mut buf).is_err() && b.recv(&mut buf).is_err());
    }
}
