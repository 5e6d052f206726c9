//! rser's benchmark suite: the load generator (`load`, the `rser-bench`
//! binary), the histogram tool (`hist`, `rser-hist`) and the no-parse
//! floor forwarder (`rser-floor`); the Criterion micro-benchmarks live in
//! `benches/`.

pub mod hist;
pub mod load;
