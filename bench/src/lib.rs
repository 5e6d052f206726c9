//! rser's benchmark suite. The Criterion micro-benchmarks live in
//! `benches/`; the load generator (`rser-bench`) and histogram tool
//! (`rser-hist`) come with the benchmark issue.
