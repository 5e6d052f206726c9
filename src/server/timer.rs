//! The timer process's loop: at each tick, what arrived on its own
//! sockets, then each loaded module's timer work (tm's timers the
//! workers left, the dispatcher's probes), then what they produced is
//! sent; then it sleeps until a module next needs it.

use std::os::fd::AsRawFd;

use arrayvec::ArrayVec;

use super::limits::{MAX_SOCKETS, TIMER_MAX_SLEEP_MS};
use super::worker::{Worker, now_ms};
use crate::modules::tm::wheel::TICK_MS;

impl Worker<'_> {
    /// One tick's timer work of every loaded module, then its sends.
    pub(crate) fn tick(&mut self) {
        for m in self.rt_ticks.clone() {
            self.with_runtime(usize::from(m), |rt, cx| rt.tick(cx));
        }
        self.flush();
        // With the workers' shared sockets, an entry's end takes effect
        // even while no datagram wakes a worker.
        self.after_batch();
    }

    /// The timer process: wakes when the earliest of its runtimes needs
    /// it (tm: when something is due that the workers have not taken;
    /// the others: their own periods; 10 ms unless they say otherwise),
    /// at least every [`TIMER_MAX_SLEEP_MS`]; receives only on sockets of
    /// its own (`reads_own`).
    pub fn run_timer_process(&mut self) -> ! {
        let mut rx = crate::server::udp::RxBatch::new();
        let mut st = crate::script::ScriptState::new();
        let main = self.vm.program().main_route();
        let mut wake = now_ms() + TICK_MS;
        loop {
            let now = now_ms();
            if wake > now {
                self.wait(wake - now);
            }
            if crate::server::drain::stopping() {
                crate::server::drain::finish();
            }
            self.now_ms = now_ms();
            if self.reads_own {
                self.read_own(&mut rx, &mut st, main);
            }
            self.tick();
            wake = self.next_tick();
        }
    }

    /// When the timer process must wake next.
    fn next_tick(&self) -> u64 {
        let now = self.now_ms;
        let mut next = now + TIMER_MAX_SLEEP_MS;
        for &m in &self.rt_ticks {
            if let Some(Some(rt)) = self.runtimes.get(usize::from(m)) {
                next = next.min(rt.next_tick(now));
            }
        }
        // Never sooner than a millisecond: a runtime with work left now
        // (a full batch) gets it then.
        next.max(now + 1)
    }

    /// What arrived on the timer process's own sockets, bounded per tick.
    fn read_own(
        &mut self,
        rx: &mut crate::server::udp::RxBatch,
        st: &mut crate::script::ScriptState,
        main: Option<u32>,
    ) {
        for si in 0..self.sockets.len() {
            self.in_sock = si;
            // Its own sockets' ICMP errors (retransmissions, probes).
            self.read_refusals(si);
            for _ in 0..4 {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sockets[si]);
                let Ok(n) = rx.recv(fd, true) else { break };
                for i in 0..n {
                    let (data, src) = rx.get(i);
                    if let Some(src) = src {
                        self.datagram(data, src, st, main);
                    }
                }
                if n < crate::server::udp::BATCH {
                    break;
                }
            }
        }
        self.in_sock = 0;
    }
}

impl Worker<'_> {
    /// Sleeps `ms` milliseconds, or until a signal is handled (SIGTERM: the
    /// stop is then seen at once) or, with sockets of its own, something
    /// arrives on them (an ICMP error included), which is read at once.
    fn wait(&self, ms: u64) {
        if !self.reads_own {
            return sleep_unless_signalled(ms);
        }
        let mut fds: ArrayVec<libc::pollfd, MAX_SOCKETS> = self
            .sockets
            .iter()
            .take(MAX_SOCKETS)
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a live array of pollfd of the given length.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms as i32);
        }
    }
}

/// Sleeps `ms` milliseconds, or until a signal is handled.
fn sleep_unless_signalled(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; no remainder is asked for. An early
    // return (EINTR) is what is wanted.
    unsafe {
        libc::nanosleep(&ts, std::ptr::null_mut());
    }
}
