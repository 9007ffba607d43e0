//! The smol server binary end to end (testkit's shared scenarios, the same
//! the tokio binary passes): health and metrics endpoints, static files,
//! graceful shutdown on SIGTERM (sessions closed with 1001, exit status 0)
//! and durability across a graceful restart.

testkit::server_binary_suite!(env!("CARGO_BIN_EXE_adapter-smol"));
