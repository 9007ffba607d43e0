//! Crash test: the real server binary on SQLite receives pushes from several
//! clients, is SIGKILLed mid-stream and restarted on the same file; every
//! acknowledged mutation must be present exactly once and clients converge
//! (testkit's crash driver checks all of it).

#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged() {
    testkit::crash::assert_binary_loses_nothing(env!("CARGO_BIN_EXE_adapter-tokio"));
}
