//! Crash test: the smol server binary on SQLite receives pushes from several
//! clients, is SIGKILLed mid-stream and restarted on the same file; every
//! acknowledged mutation must be present exactly once and clients converge
//! (testkit's crash driver checks all of it).

use testkit::crash::{CrashConfig, run_blocking};

#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CrashConfig::new(
        env!("CARGO_BIN_EXE_adapter-smol"),
        dir.path().join("crash.db"),
    );
    cfg.args = vec!["--log-level".into(), "warn".into()];
    let report = run_blocking(cfg.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.acknowledged,
        cfg.clients as u64 * cfg.mutations_per_client
    );
    assert_eq!(report.log_len as u64, report.acknowledged);
    assert!(report.kills >= cfg.kills, "{report:?}");
}
