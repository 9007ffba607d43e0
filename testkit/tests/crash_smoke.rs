//! Runs the crash driver against the reference server process: SIGKILLs in the
//! middle of a push stream, restarts on the same file, and the driver's checks.

use testkit::crash::{CrashConfig, run_blocking};

#[test]
fn reference_server_survives_sigkill_with_every_ack() {
    let dir = std::env::temp_dir().join(format!("testkit-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("state.json");
    let _ = std::fs::remove_file(&db);
    let mut cfg = CrashConfig::new(env!("CARGO_BIN_EXE_reference-server"), &db);
    cfg.clients = 3;
    cfg.mutations_per_client = 60;
    cfg.kills = 2;
    cfg.scope = "shared".into();
    cfg.token = Some("alice".into());
    cfg.show_child_stderr = false;
    let report = run_blocking(cfg).expect("crash invariants");
    assert_eq!(report.acknowledged, 180);
    assert_eq!(report.log_len, 180);
    assert_eq!(report.kills, 3);
    let _ = std::fs::remove_dir_all(&dir);
}
