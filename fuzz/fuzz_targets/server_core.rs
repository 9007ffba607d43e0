//! cargo-fuzz wrapper; the checks live in `fuzz_targets::server_core`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::server_core::run(data));
