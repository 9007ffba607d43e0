//! cargo-fuzz wrapper; the checks live in `fuzz_targets::sync_sim`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::sync_sim::run(data));
