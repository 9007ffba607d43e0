//! cargo-fuzz wrapper; the checks live in `fuzz_targets::sync_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::sync_request::run(data));
