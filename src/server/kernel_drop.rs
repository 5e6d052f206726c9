//! Sources dropped in the kernel: a classic BPF program on each UDP
//! socket (`SO_ATTACH_FILTER`) that throws away a datagram from a listed
//! address before any process reads it, so a flood from an address pike
//! found hot (its `kernel_drop` parameter) costs no worker a receive, a
//! parse or a script run. The list is in shared memory (a generation
//! word says when it changed); each process rebuilds and attaches the
//! program to its own sockets when the list changed or an entry expired.
//! The program is pure data built here and tested without a socket.

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rser_shm::{Carver, Slice};

/// IPv4 addresses a program compares at most (a jump's offset is a byte).
pub const MAX_V4: usize = 250;
/// IPv6 /64 prefixes a program compares at most (four instructions each).
pub const MAX_V6: usize = 60;
const ENTRIES: usize = MAX_V4 + MAX_V6;

/// What a program compares: an IPv4 address, or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Dropped {
    pub fn of(ip: IpAddr) -> Dropped {
        match ip {
            IpAddr::V4(a) => Dropped::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Dropped::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&a.octets()[..8]);
                    Dropped::V6(p)
                }
            },
        }
    }

    pub fn text(&self) -> String {
        match self {
            Dropped::V4(a) => std::net::Ipv4Addr::from(*a).to_string(),
            Dropped::V6(p) => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(p);
                format!("{}/64", Ipv6Addr::from(b))
            }
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct Entry {
    /// The address in a word (IPv4 in the low 32 bits, or the /64), and 4
    /// or 6 (0: free).
    addr: AtomicU64,
    family: AtomicU32,
    /// Monotonic ms until which it is dropped.
    until: AtomicU64,
}

/// The list every process reads.
#[derive(Clone, Copy)]
pub struct DropList {
    entries: Slice<Entry>,
    generation: Slice<AtomicU64>,
}

impl DropList {
    pub fn carve(carver: &mut Carver<'_>) -> Option<DropList> {
        Some(DropList {
            entries: carver.slice(ENTRIES, |_| Entry::default())?,
            generation: carver.slice(1, |_| AtomicU64::new(0))?,
        })
    }

    /// Drops `d` until `until` (ms); false when the list is full of live
    /// entries of its family.
    pub fn add(&self, d: Dropped, until: u64, now: u64) -> bool {
        let (word, family, range) = match d {
            Dropped::V4(a) => (u64::from(u32::from_be_bytes(a)), 4, 0..MAX_V4),
            Dropped::V6(p) => (u64::from_be_bytes(p), 6, MAX_V4..ENTRIES),
        };
        let slot = self.entries[range.clone()]
            .iter()
            .find(|e| {
                e.family.load(Ordering::Acquire) == family && e.addr.load(Ordering::Acquire) == word
            })
            .or_else(|| {
                self.entries[range].iter().find(|e| {
                    e.family.load(Ordering::Acquire) == 0 || e.until.load(Ordering::Acquire) <= now
                })
            });
        let Some(e) = slot else {
            return false;
        };
        e.addr.store(word, Ordering::Release);
        e.until.store(until, Ordering::Release);
        e.family.store(family, Ordering::Release);
        self.generation[0].fetch_add(1, Ordering::AcqRel);
        true
    }

    pub fn generation(&self) -> u64 {
        self.generation[0].load(Ordering::Acquire)
    }

    /// The entries live at `now`, and the earliest end among them.
    pub fn live(&self, now: u64) -> (Vec<Dropped>, Option<u64>) {
        let mut out = Vec::new();
        let mut next = None::<u64>;
        for e in self.entries.iter() {
            let until = e.until.load(Ordering::Acquire);
            let word = e.addr.load(Ordering::Acquire);
            let d = match e.family.load(Ordering::Acquire) {
                4 => Dropped::V4((word as u32).to_be_bytes()),
                6 => Dropped::V6(word.to_be_bytes()),
                _ => continue,
            };
            if until <= now {
                continue;
            }
            out.push(d);
            next = Some(next.map_or(until, |n| n.min(until)));
        }
        (out, next)
    }
}

/// Classic BPF's (linux/filter.h): `BPF_LD | BPF_W | BPF_ABS`,
/// `BPF_JMP | BPF_JEQ | BPF_K`, `BPF_RET | BPF_K`.
const LD_W_ABS: u16 = 0x20;
const JMP_JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// Loads relative to the network header (`SKF_NET_OFF`).
const NET_OFF: i32 = -0x10_0000;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program for a socket of one family: a datagram whose source is
/// listed is dropped (`ret 0`), any other kept whole. None when nothing
/// of that family is listed.
pub fn program(listed: &[Dropped], v6: bool) -> Option<Vec<libc::sock_filter>> {
    let net = |off: i32| (NET_OFF + off) as u32;
    let mut p = Vec::new();
    if v6 {
        let prefixes: Vec<u64> = listed
            .iter()
            .filter_map(|d| match d {
                Dropped::V6(p) => Some(u64::from_be_bytes(*p)),
                _ => None,
            })
            .take(MAX_V6)
            .collect();
        if prefixes.is_empty() {
            return None;
        }
        let n = prefixes.len();
        for (i, w) in prefixes.iter().enumerate() {
            // Four instructions a prefix; from the last one of block i the
            // drop is (n - 1 - i) * 4 + 1 ahead (past the `ret keep`).
            let to_drop = ((n - 1 - i) * 4 + 1) as u8;
            p.push(ins(LD_W_ABS, 0, 0, net(8)));
            p.push(ins(JMP_JEQ_K, 0, 2, (w >> 32) as u32));
            p.push(ins(LD_W_ABS, 0, 0, net(12)));
            p.push(ins(JMP_JEQ_K, to_drop, 0, *w as u32));
        }
    } else {
        let addrs: Vec<u32> = listed
            .iter()
            .filter_map(|d| match d {
                Dropped::V4(a) => Some(u32::from_be_bytes(*a)),
                _ => None,
            })
            .take(MAX_V4)
            .collect();
        if addrs.is_empty() {
            return None;
        }
        let n = addrs.len();
        p.push(ins(LD_W_ABS, 0, 0, net(12)));
        for (i, a) in addrs.iter().enumerate() {
            p.push(ins(JMP_JEQ_K, (n - i) as u8, 0, *a));
        }
    }
    p.push(ins(RET_K, 0, 0, u32::MAX));
    p.push(ins(RET_K, 0, 0, 0));
    Some(p)
}

/// Attaches `prog` to socket `fd`, or takes any program off when None.
pub fn attach(fd: RawFd, prog: Option<&[libc::sock_filter]>) -> std::io::Result<()> {
    let rc = match prog {
        Some(p) => {
            let fprog = libc::sock_fprog {
                len: p.len() as u16,
                filter: p.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: a valid program the kernel copies during the call.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    (&raw const fprog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            }
        }
        None => {
            let zero: libc::c_int = 0;
            // SAFETY: SO_DETACH_FILTER ignores its value.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_DETACH_FILTER,
                    (&raw const zero).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            // ENOENT: there was none.
            if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                0
            } else {
                rc
            }
        }
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// A process's view: what it attached last, and when to look again.
#[derive(Debug, Default)]
pub struct Applied {
    generation: u64,
    next_expiry: Option<u64>,
    attached: bool,
}

impl Applied {
    /// Brings `sockets`' programs (each a descriptor and whether it is
    /// IPv6) up to the list at `now` when it changed or an entry expired
    /// since the last time; `sockets` is walked only then.
    pub fn refresh(
        &mut self,
        list: &DropList,
        sockets: impl Iterator<Item = (RawFd, bool)>,
        now: u64,
    ) {
        let generation = list.generation();
        let expired = self.next_expiry.is_some_and(|t| t <= now);
        if generation == self.generation && !expired {
            return;
        }
        self.generation = generation;
        let (live, next) = list.live(now);
        self.next_expiry = next;
        if live.is_empty() && !self.attached {
            return;
        }
        for (fd, v6) in sockets {
            let prog = program(&live, v6);
            if let Err(e) = attach(fd, prog.as_deref()) {
                log::error!("kernel_drop: cannot set the socket's filter: {e}");
            }
        }
        self.attached = !live.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn programs_compare_each_listed_source_of_their_family() {
        let listed = [
            Dropped::of("192.0.2.7".parse().unwrap()),
            Dropped::of("2001:db8:1:2::9".parse().unwrap()),
            Dropped::of("198.51.100.1".parse().unwrap()),
        ];
        let v4 = program(&listed, false).unwrap();
        assert_eq!(v4.len(), 5);
        assert_eq!((v4[1].k, v4[1].jt), (0xC000_0207, 2));
        assert_eq!((v4[2].k, v4[2].jt), (0xC633_6401, 1));
        assert_eq!((v4[3].k, v4[4].k), (u32::MAX, 0));
        let v6 = program(&listed, true).unwrap();
        assert_eq!(v6.len(), 6);
        assert_eq!((v6[1].k, v6[3].k, v6[3].jt), (0x2001_0db8, 0x0001_0002, 1));
        assert_eq!(program(&listed[..1], true), None);
        assert_eq!(listed[1].text(), "2001:db8:1:2::/64");
    }

    /// Over loopback: a listed source's datagrams never arrive, another's
    /// do; taken off, the first arrives again.
    #[test]
    fn a_listed_source_is_dropped_by_the_kernel() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (bad, good) = (
            UdpSocket::bind("127.0.0.2:0").unwrap(),
            UdpSocket::bind("127.0.0.3:0").unwrap(),
        );
        let fd = std::os::fd::AsRawFd::as_raw_fd(&rx);
        let prog = program(&[Dropped::of("127.0.0.2".parse().unwrap())], false).unwrap();
        attach(fd, Some(&prog)).unwrap();
        let to = rx.local_addr().unwrap();
        bad.send_to(b"flood", to).unwrap();
        good.send_to(b"call", to).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"call"[..], good.local_addr().unwrap())
        );
        assert!(
            rx.recv_from(&mut buf).is_err(),
            "the listed source's datagram was dropped"
        );
        attach(fd, None).unwrap();
        bad.send_to(b"again", to).unwrap();
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
    }

    #[test]
    fn the_list_expires_and_says_when_it_changed() {
        let r = rser_shm::Region::create(1 << 16).unwrap();
        let l = DropList::carve(&mut r.carver()).unwrap();
        let a = Dropped::of("192.0.2.1".parse().unwrap());
        assert_eq!(l.generation(), 0);
        assert!(l.add(a, 1_000, 0));
        assert!(l.add(a, 2_000, 10), "the same address: its time moves");
        assert_eq!(l.generation(), 2);
        assert_eq!(l.live(500), (vec![a], Some(2_000)));
        assert_eq!(l.live(2_000).0, vec![]);
        for i in 0..MAX_V4 as u32 {
            assert!(l.add(Dropped::V4(i.to_be_bytes()), 5_000, 3_000));
        }
        assert!(
            !l.add(Dropped::V4([9; 4]), 5_000, 3_000),
            "full of live entries"
        );
        assert!(
            l.add(Dropped::V4([9; 4]), 9_000, 5_000),
            "room once they expire"
        );
    }
}
