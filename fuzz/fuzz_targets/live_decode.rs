//! cargo-fuzz wrapper; the checks live in `fuzz_targets::live_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::live_decode::run(data));
