//! Choosing a destination of a set (`ds_select_dst`), as pure code: the
//! caller gives each destination's state and a key (a hash, a shared
//! counter or a random number, by algorithm); the answer is the failover
//! order, the chosen destination first, then the others `ds_next_dst`
//! walks through.

use arrayvec::ArrayVec;

/// Destinations of one set at most (a list's bound).
pub const MAX_PER_SET: usize = 64;

/// Kamailio's algorithm numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    CallId,
    FromUri,
    ToUri,
    RequestUri,
    RoundRobin,
    Random,
    Priority,
    Weight,
    CallLoad,
}

impl Alg {
    pub fn from_number(n: i64) -> Option<Alg> {
        Some(match n {
            0 => Alg::CallId,
            1 => Alg::FromUri,
            2 => Alg::ToUri,
            3 => Alg::RequestUri,
            4 => Alg::RoundRobin,
            6 => Alg::Random,
            8 => Alg::Priority,
            9 => Alg::Weight,
            10 => Alg::CallLoad,
            _ => return None,
        })
    }
}

/// What selection needs of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub usable: bool,
    pub weight: u32,
    /// Calls in progress (algorithm 10).
    pub load: u32,
}

/// The failover order for a set, or empty when no destination is usable
/// (the script then replies 503 itself). `key` is the hash for 0-3, the
/// set's shared counter for 4 and 9, a random number for 6; unused for 8
/// and 10.
pub fn order(alg: Alg, dests: &[View], key: u64) -> ArrayVec<u8, MAX_PER_SET> {
    let n = dests.len().min(MAX_PER_SET);
    let mut out = ArrayVec::new();
    if n == 0 || !dests[..n].iter().any(|d| d.usable) {
        return out;
    }
    let first = match alg {
        // A hash keeps a key on one destination; when that one is down the
        // next usable takes it, so only the down one's share moves.
        Alg::CallId
        | Alg::FromUri
        | Alg::ToUri
        | Alg::RequestUri
        | Alg::RoundRobin
        | Alg::Random => (key % n as u64) as usize,
        Alg::Priority => 0,
        Alg::Weight => by_weight(&dests[..n], key),
        Alg::CallLoad => least_loaded(&dests[..n]),
    };
    // The chosen one (or the next usable after it), then the rest in list
    // order, wrapping.
    for i in 0..n {
        let k = (first + i) % n;
        if dests[k].usable {
            out.push(k as u8);
        }
    }
    out
}

/// Weighted round robin: slot `key % total` of the cumulative weights, so
/// over `total` consecutive selections each destination is chosen exactly
/// its weight's times (all weights 0: plain round robin).
fn by_weight(dests: &[View], key: u64) -> usize {
    let total: u64 = dests.iter().map(|d| u64::from(d.weight)).sum();
    if total == 0 {
        return (key % dests.len() as u64) as usize;
    }
    let mut slot = key % total;
    for (i, d) in dests.iter().enumerate() {
        let w = u64::from(d.weight);
        if slot < w {
            return i;
        }
        slot -= w;
    }
    0
}

/// The usable destination with the fewest calls in progress; ties go to the
/// first in the list.
fn least_loaded(dests: &[View]) -> usize {
    dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.usable)
        .min_by_key(|(i, d)| (d.load, *i))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(usable: &[bool]) -> Vec<View> {
        usable
            .iter()
            .map(|&u| View {
                usable: u,
                weight: 0,
                load: 0,
            })
            .collect()
    }

    #[test]
    fn a_hash_sticks_and_moves_only_when_its_destination_is_down() {
        let all = views(&[true, true, true]);
        assert_eq!(order(Alg::CallId, &all, 7)[..], [1, 2, 0]);
        let one_down = views(&[true, false, true]);
        assert_eq!(order(Alg::CallId, &one_down, 7)[..], [2, 0]);
        assert_eq!(order(Alg::CallId, &one_down, 6)[0], 0, "others keep theirs");
    }

    #[test]
    fn round_robin_cycles_and_priority_takes_the_first_usable() {
        let all = views(&[true, true, true]);
        let firsts: Vec<u8> = (0..6).map(|k| order(Alg::RoundRobin, &all, k)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(
            order(Alg::Priority, &views(&[false, true, true]), 99)[..],
            [1, 2]
        );
    }

    #[test]
    fn weights_are_respected_exactly_over_a_cycle() {
        let mut d = views(&[true, true, true]);
        d[0].weight = 50;
        d[1].weight = 30;
        d[2].weight = 20;
        let mut count = [0; 3];
        for k in 0..1000 {
            count[order(Alg::Weight, &d, k)[0] as usize] += 1;
        }
        assert_eq!(count, [500, 300, 200]);
    }

    #[test]
    fn call_load_picks_the_least_busy() {
        let mut d = views(&[true, true, true]);
        d[0].load = 5;
        d[1].load = 2;
        d[2].load = 2;
        assert_eq!(order(Alg::CallLoad, &d, 0)[0], 1);
        d[1].usable = false;
        assert_eq!(order(Alg::CallLoad, &d, 0)[0], 2);
    }

    #[test]
    fn nothing_usable_is_an_empty_order() {
        assert!(order(Alg::RoundRobin, &views(&[false, false]), 3).is_empty());
        assert!(order(Alg::Random, &[], 3).is_empty());
        assert!(Alg::from_number(5).is_none());
    }
}
