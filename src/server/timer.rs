//! The timer process's loop: every tick, what arrived on its own
//! sockets, then each loaded module's timer work (tm's timers, the
//! dispatcher's probes), then what they produced is sent.

use super::worker::{Worker, now_ms};

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

    /// The timer process: wakes every tick; receives only on sockets of
    /// its own (`reads_own`).
    pub fn run_timer_process(&mut self) -> ! {
        let tick = std::time::Duration::from_millis(crate::modules::tm::wheel::TICK_MS);
        let mut rx = crate::server::udp::RxBatch::new();
        let mut st = crate::script::ScriptState::new();
        let main = self.vm.program().main_route();
        loop {
            std::thread::sleep(tick);
            if crate::server::drain::stopping() {
                crate::server::drain::finish();
            }
            self.now_ms = now_ms();
            if self.reads_own {
                self.read_own(&mut rx, &mut st, main);
            }
            self.tick();
        }
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
