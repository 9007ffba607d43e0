//! Criterion benchmarks of the sync engine (see BENCHMARKS.md).

fn main() {}
