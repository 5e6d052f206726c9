//! The pipes in shared memory: a fixed array every worker updates without
//! a lock, each pipe found by its name's hash. The decisions are pure
//! over the pipe's words, the caller's clock (microseconds) and a random
//! number, so they are tested without a server.
//!
//! A limit is requests per second, measured (Kamailio's pipelimit lets
//! `limit × timer_interval` through, issues #1390 and #1671):
//! - TAILDROP: the generic cell rate algorithm (ITU-T I.371): a pipe
//!   holds a theoretical arrival time advanced by 1/limit s for each
//!   request let through; one that would push it more than a tenth of a
//!   second ahead of now is dropped. Bursts up to limit/10 pass; over any
//!   stretch longer than that, at most `limit` a second do.
//! - RED (random early detection): each request is dropped with the
//!   probability that brings the last second's offered rate down to the
//!   limit (none while under it), spreading drops rather than cutting the
//!   tail.
//! - NETWORK: every request dropped while the bytes waiting in the
//!   server's UDP receive queues exceed the limit.
//! - FEEDBACK: the limit is a CPU load in per cent; each second a PI
//!   controller moves the pipe's drop probability so the machine's load
//!   settles at it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rser_shm::{Carver, Slice};
use xxhash_rust::xxh3::xxh3_64;

/// Pipes at most.
pub const MAX_PIPES: usize = 256;
/// Longest pipe name.
pub const MAX_NAME: usize = 32;
/// One million: probabilities are in parts per million.
const PPM: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    TailDrop,
    Red,
    Network,
    Feedback,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TAILDROP" => Algorithm::TailDrop,
            "RED" => Algorithm::Red,
            "NETWORK" => Algorithm::Network,
            "FEEDBACK" => Algorithm::Feedback,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TailDrop => "TAILDROP",
            Algorithm::Red => "RED",
            Algorithm::Network => "NETWORK",
            Algorithm::Feedback => "FEEDBACK",
        }
    }

    fn code(self) -> u32 {
        self as u32 + 1
    }

    fn of_code(c: u32) -> Option<Algorithm> {
        [
            Algorithm::TailDrop,
            Algorithm::Red,
            Algorithm::Network,
            Algorithm::Feedback,
        ]
        .get(usize::try_from(c).ok()?.checked_sub(1)?)
        .copied()
    }
}

/// A pipe as the config or the control interface defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeDef {
    pub name: String,
    pub algorithm: Algorithm,
    pub limit: u32,
}

/// `name:ALGORITHM:limit` (ratelimit's `pipe` parameter's form).
pub fn parse_def(s: &str) -> Result<PipeDef, String> {
    let mut it = s.splitn(3, ':').map(str::trim);
    let (Some(name), Some(alg), Some(limit)) = (it.next(), it.next(), it.next()) else {
        return Err(format!("pipe '{s}': name:ALGORITHM:limit"));
    };
    let algorithm = Algorithm::parse(alg)
        .ok_or_else(|| format!("pipe '{s}': {alg} is not TAILDROP, RED, NETWORK or FEEDBACK"))?;
    let limit = limit
        .parse::<u32>()
        .map_err(|_| format!("pipe '{s}': limit {limit} is not a number"))?;
    check_name(name)?;
    Ok(PipeDef {
        name: name.to_string(),
        algorithm,
        limit,
    })
}

pub fn check_name(name: &str) -> Result<(), String> {
    match !name.is_empty() && name.len() <= MAX_NAME {
        true => Ok(()),
        false => Err(format!("pipe name '{name}': 1 to {MAX_NAME} bytes")),
    }
}

#[repr(C)]
#[derive(Default)]
struct Pipe {
    /// Hash of the name (0: free).
    key: AtomicU64,
    name: [AtomicU64; MAX_NAME / 8],
    name_len: AtomicU32,
    algorithm: AtomicU32,
    limit: AtomicU32,
    /// TAILDROP: the theoretical arrival time (µs).
    tat: AtomicU64,
    /// The current second (high 32 bits) and requests offered in it.
    second: AtomicU64,
    /// Requests offered in the second before.
    last: AtomicU32,
    /// RED and FEEDBACK: the drop probability (ppm).
    drop_ppm: AtomicU32,
    /// FEEDBACK: the controller's integral term (an i32's bits).
    integral: AtomicU32,
    accepted: AtomicU64,
    dropped: AtomicU64,
}

/// What the control interface lists of a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeStats {
    pub def: PipeDef,
    /// Requests offered in the last whole second.
    pub last_second: u32,
    pub accepted: u64,
    pub dropped: u64,
    pub drop_ppm: u32,
}

/// The machine's load as the timer process measured it last.
#[repr(C)]
#[derive(Default)]
pub struct Load {
    /// CPU busy, per cent × 100.
    pub cpu: AtomicU32,
    /// Bytes waiting in the server's UDP receive queues.
    pub queued: AtomicU64,
    /// FEEDBACK's gains (× 1000): proportional, integral.
    pub kp: AtomicU32,
    pub ki: AtomicU32,
}

#[derive(Clone, Copy)]
pub struct Pipes {
    pipes: Slice<Pipe>,
    load: Slice<Load>,
}

/// A pipe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    NoPipe,
}

fn name_key(name: &str) -> u64 {
    xxh3_64(name.as_bytes()) | 1
}

impl Pipes {
    pub fn carve(carver: &mut Carver<'_>) -> Option<Pipes> {
        let load = carver.slice(1, |_| Load {
            kp: AtomicU32::new(DEFAULT_KP),
            ki: AtomicU32::new(DEFAULT_KI),
            ..Load::default()
        })?;
        Some(Pipes {
            pipes: carver.slice(MAX_PIPES, |_| Pipe::default())?,
            load,
        })
    }

    pub fn load(&self) -> &Load {
        &self.load[0]
    }

    /// The pipe named `name`, its index.
    pub fn find(&self, name: &str) -> Option<usize> {
        let k = name_key(name);
        (0..MAX_PIPES).find(|&i| {
            let p = &self.pipes[i];
            p.key.load(Ordering::Acquire) == k && self.name_of(p) == name
        })
    }

    fn name_of(&self, p: &Pipe) -> String {
        let mut b = [0u8; MAX_NAME];
        for (i, w) in p.name.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Acquire).to_le_bytes());
        }
        let n = (p.name_len.load(Ordering::Acquire) as usize).min(MAX_NAME);
        String::from_utf8_lossy(&b[..n]).into_owned()
    }

    /// Defines a pipe, or changes one's algorithm and limit (its counts
    /// stay). Err when all `MAX_PIPES` are taken.
    pub fn set(&self, d: &PipeDef) -> Result<usize, String> {
        check_name(&d.name)?;
        let i = match self.find(&d.name) {
            Some(i) => i,
            None => self.claim(&d.name)?,
        };
        let p = &self.pipes[i];
        p.algorithm.store(d.algorithm.code(), Ordering::Release);
        p.limit.store(d.limit, Ordering::Release);
        Ok(i)
    }

    fn claim(&self, name: &str) -> Result<usize, String> {
        let k = name_key(name);
        for i in 0..MAX_PIPES {
            let p = &self.pipes[i];
            if p.key
                .compare_exchange(0, k, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let mut b = [0u8; MAX_NAME];
                b[..name.len()].copy_from_slice(name.as_bytes());
                for (j, w) in p.name.iter().enumerate() {
                    let word =
                        u64::from_le_bytes(b[j * 8..j * 8 + 8].try_into().unwrap_or_default());
                    w.store(word, Ordering::Release);
                }
                p.name_len.store(name.len() as u32, Ordering::Release);
                return Ok(i);
            }
        }
        Err(format!(
            "no room for pipe '{name}': {MAX_PIPES} pipes at most"
        ))
    }

    /// A request through pipe `i` at `now_us`; `random` a uniform number.
    pub fn check(&self, i: usize, now_us: u64, random: u32) -> Verdict {
        let Some(p) = (i < MAX_PIPES).then(|| &self.pipes[i]) else {
            return Verdict::NoPipe;
        };
        let Some(alg) = Algorithm::of_code(p.algorithm.load(Ordering::Acquire)) else {
            return Verdict::NoPipe;
        };
        let limit = p.limit.load(Ordering::Acquire);
        offered(p, now_us);
        let pass = match alg {
            Algorithm::TailDrop => gcra(p, limit, now_us),
            Algorithm::Red => {
                let last = p.last.load(Ordering::Acquire);
                // The share of the last second's offer beyond the limit.
                let drop = match last > limit {
                    true => PPM - (u64::from(limit) * u64::from(PPM) / u64::from(last)) as u32,
                    false => 0,
                };
                random % PPM >= drop
            }
            Algorithm::Network => self.load().queued.load(Ordering::Acquire) <= u64::from(limit),
            Algorithm::Feedback => random % PPM >= p.drop_ppm.load(Ordering::Acquire),
        };
        let counter = if pass { &p.accepted } else { &p.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        if pass { Verdict::Accept } else { Verdict::Drop }
    }

    /// Once a second, in the timer process: FEEDBACK pipes' drop
    /// probabilities moved towards their target load (`cpu`: per cent ×
    /// 100, measured over the last second).
    pub fn feedback(&self, cpu: u32) {
        let l = self.load();
        l.cpu.store(cpu, Ordering::Release);
        let (kp, ki) = (
            i64::from(l.kp.load(Ordering::Acquire)),
            i64::from(l.ki.load(Ordering::Acquire)),
        );
        for p in self.pipes.iter() {
            if p.key.load(Ordering::Acquire) == 0
                || Algorithm::of_code(p.algorithm.load(Ordering::Acquire))
                    != Some(Algorithm::Feedback)
            {
                continue;
            }
            // Error in per cent × 100 above the target: positive drops more.
            let error = i64::from(cpu) - i64::from(p.limit.load(Ordering::Acquire)) * 100;
            let integral = (i64::from(p.integral.load(Ordering::Acquire) as i32) + error)
                .clamp(-1_000_000, 1_000_000);
            p.integral.store(integral as i32 as u32, Ordering::Release);
            // Gains × 1000, error per cent × 100: to ppm.
            let ppm = (kp * error + ki * integral) / 10;
            p.drop_ppm
                .store(ppm.clamp(0, i64::from(PPM)) as u32, Ordering::Release);
        }
    }

    /// Whether pipe `i` is defined with `algorithm` and `limit` now.
    pub fn is(&self, i: usize, algorithm: Algorithm, limit: u32) -> bool {
        self.pipes.get(i).is_some_and(|p| {
            p.key.load(Ordering::Acquire) != 0
                && p.algorithm.load(Ordering::Acquire) == algorithm.code()
                && p.limit.load(Ordering::Acquire) == limit
        })
    }

    pub fn stats(&self) -> Vec<PipeStats> {
        let mut out = Vec::new();
        for p in self.pipes.iter() {
            if p.key.load(Ordering::Acquire) == 0 {
                continue;
            }
            let Some(algorithm) = Algorithm::of_code(p.algorithm.load(Ordering::Acquire)) else {
                continue;
            };
            out.push(PipeStats {
                def: PipeDef {
                    name: self.name_of(p),
                    algorithm,
                    limit: p.limit.load(Ordering::Acquire),
                },
                last_second: p.last.load(Ordering::Acquire),
                accepted: p.accepted.load(Ordering::Relaxed),
                dropped: p.dropped.load(Ordering::Relaxed),
                drop_ppm: p.drop_ppm.load(Ordering::Acquire),
            });
        }
        out
    }
}

/// FEEDBACK's default gains (× 1000).
pub const DEFAULT_KP: u32 = 500;
pub const DEFAULT_KI: u32 = 100;

/// Counts a request offered in the current second (rolling the count
/// into `last` when the second changed).
fn offered(p: &Pipe, now_us: u64) {
    let sec = (now_us / 1_000_000) as u32;
    let mut cur = p.second.load(Ordering::Acquire);
    loop {
        let (s, n) = ((cur >> 32) as u32, cur as u32);
        let (next, rolled) = match s == sec {
            true => ((u64::from(s) << 32) | u64::from(n.saturating_add(1)), None),
            false => (
                (u64::from(sec) << 32) | 1,
                Some(if s.wrapping_add(1) == sec { n } else { 0 }),
            ),
        };
        match p
            .second
            .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if let Some(last) = rolled {
                    p.last.store(last, Ordering::Release);
                }
                return;
            }
            Err(now) => cur = now,
        }
    }
}

/// TAILDROP's cell rate check: true when the request fits `limit` a
/// second with a tenth of a second of burst.
fn gcra(p: &Pipe, limit: u32, now: u64) -> bool {
    if limit == 0 {
        return false;
    }
    let interval = 1_000_000 / u64::from(limit);
    let tolerance = 100_000;
    let mut tat = p.tat.load(Ordering::Acquire);
    loop {
        let next = tat.max(now) + interval.max(1);
        if next > now + tolerance + interval {
            return false;
        }
        match p
            .tat
            .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(t) => tat = t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipes() -> (rser_shm::Region, Pipes) {
        let r = rser_shm::Region::create(1 << 20).unwrap();
        let p = Pipes::carve(&mut r.carver()).unwrap();
        (r, p)
    }

    fn def(s: &str) -> PipeDef {
        parse_def(s).unwrap()
    }

    /// A steady stream of `rate` requests a second for `secs` seconds
    /// through pipe `i`: the ones let through.
    fn stream(p: &Pipes, i: usize, rate: u64, secs: u64, mut random: impl FnMut() -> u32) -> u64 {
        let gap = 1_000_000 / rate;
        let mut passed = 0;
        let start = 50_000_000;
        for n in 0..rate * secs {
            if p.check(i, start + n * gap, random()) == Verdict::Accept {
                passed += 1;
            }
        }
        passed
    }

    fn rng() -> impl FnMut() -> u32 {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 16) as u32
        }
    }

    #[test]
    fn definitions_parse_and_refuse_what_is_wrong() {
        assert_eq!(
            def("calls:TAILDROP:100"),
            PipeDef {
                name: "calls".into(),
                algorithm: Algorithm::TailDrop,
                limit: 100
            }
        );
        assert!(parse_def("calls:LEAKY:100").is_err());
        assert!(parse_def("calls:RED").is_err());
        assert!(parse_def("calls:RED:x").is_err());
        assert!(parse_def(&format!("{}:RED:1", "n".repeat(33))).is_err());
    }

    #[test]
    fn taildrop_holds_a_pipe_at_its_rate_per_second() {
        let (_r, p) = pipes();
        let i = p.set(&def("calls:TAILDROP:100")).unwrap();
        // Five times the limit for 10 s: 100 a second, within a burst.
        let passed = stream(&p, i, 500, 10, rng());
        assert!((1_000..=1_011).contains(&passed), "{passed}");
        // Under the limit: everything.
        let j = p.set(&def("slow:TAILDROP:100")).unwrap();
        assert_eq!(stream(&p, j, 50, 10, rng()), 500);
        assert_eq!(p.check(999, 0, 0), Verdict::NoPipe);
        assert_eq!(p.find("calls"), Some(i));
        assert_eq!(p.find("nope"), None);
    }

    #[test]
    fn red_drops_the_share_over_the_limit_at_random() {
        let (_r, p) = pipes();
        let i = p.set(&def("r:RED:200")).unwrap();
        let passed = stream(&p, i, 800, 10, rng());
        // The first second passes whole (nothing measured yet): 800 +
        // 9 s at about 200.
        assert!((2_400..=2_800).contains(&passed), "{passed}");
        let s = &p.stats()[0];
        assert_eq!((s.accepted + s.dropped, s.last_second), (8_000, 800));
    }

    #[test]
    fn network_drops_while_the_queues_are_over_the_limit() {
        let (_r, p) = pipes();
        let i = p.set(&def("n:NETWORK:65536")).unwrap();
        assert_eq!(p.check(i, 1, 0), Verdict::Accept);
        p.load().queued.store(100_000, Ordering::Release);
        assert_eq!(p.check(i, 2, 0), Verdict::Drop);
    }

    #[test]
    fn feedback_drops_more_while_the_load_is_over_its_target() {
        let (_r, p) = pipes();
        let i = p.set(&def("f:FEEDBACK:70")).unwrap();
        p.feedback(5_000);
        assert_eq!(p.stats()[0].drop_ppm, 0, "under the target");
        let mut last = 0;
        for _ in 0..5 {
            p.feedback(9_000);
            let now = p.stats()[0].drop_ppm;
            assert!(now > last, "{now} after {last}");
            last = now;
        }
        let passed = (0..10_000u32)
            .filter(|n| p.check(i, u64::from(*n), n.wrapping_mul(2_654_435_761)) == Verdict::Accept)
            .count();
        let expect = 10_000 - (u64::from(last) * 10_000 / u64::from(PPM)) as usize;
        assert!(passed.abs_diff(expect) < 300, "{passed} vs {expect}");
        // Back under: the probability falls to nothing.
        for _ in 0..200 {
            p.feedback(1_000);
        }
        assert_eq!(p.stats()[0].drop_ppm, 0);
    }

    #[test]
    fn a_pipe_changed_keeps_its_place_and_counts() {
        let (_r, p) = pipes();
        let i = p.set(&def("x:TAILDROP:10")).unwrap();
        p.check(i, 1, 0);
        assert_eq!(p.set(&def("x:RED:20")).unwrap(), i);
        let s = &p.stats()[0];
        assert_eq!(
            (s.def.algorithm, s.def.limit, s.accepted),
            (Algorithm::Red, 20, 1)
        );
    }
}
