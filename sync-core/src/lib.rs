//! Sans-IO offline-first sync: protocol types, the server engine, the client
//! replica and an in-memory store.
//!
//! Owns every sync protocol decision. It must never do IO, read a clock, spawn a
//! thread, or use a global random number generator.
