//! The load NETWORK and FEEDBACK pipes look at, sampled once a second by
//! the timer process: the CPU's busy share from `/proc/stat`, and the
//! bytes waiting in the server's UDP sockets' receive queues from
//! `/proc/net/udp` and `/proc/net/udp6`. The parsing is pure.

/// The aggregate `cpu` line's busy and total jiffies.
pub fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Busy share between two samples, per cent × 100.
pub fn busy(before: (u64, u64), after: (u64, u64)) -> u32 {
    let (b, t) = (
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
    );
    match t {
        0 => 0,
        t => (b * 10_000 / t) as u32,
    }
}

/// Bytes in the receive queues of the sockets bound to `ports`, from a
/// `/proc/net/udp` (or `udp6`) table.
pub fn queued(table: &str, ports: &[u16]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let rx = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
            ports.contains(&port).then_some(rx)
        })
        .sum()
}

/// One sample of both, read from /proc.
pub fn sample(ports: &[u16]) -> (Option<(u64, u64)>, u64) {
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| cpu_times(&s));
    let q = ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| queued(&t, ports))
        .sum();
    (cpu, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_between_samples() {
        let a = cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = cpu_times("cpu  250 0 150 800 100 0 0 0 0 0\n").unwrap();
        assert_eq!(a, (200, 1_000));
        assert_eq!(busy(a, b), 6_666);
        assert_eq!(busy(a, a), 0);
        assert_eq!(cpu_times("intr 1 2"), None);
    }

    #[test]
    fn receive_queues_of_our_ports() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                 \x20  1: 0100007F:13C4 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 1 2 0 0\n\
                 \x20  2: 0100007F:13C6 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 1 2 0 0\n";
        assert_eq!(queued(t, &[5060]), 0xA00);
        assert_eq!(queued(t, &[5060, 5062]), 0xB00);
        assert_eq!(queued(t, &[5070]), 0);
    }
}
