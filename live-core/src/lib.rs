//! Sans-IO pub/sub hub: sessions, topics, send queues, heartbeats and the
//! WebSocket handshake rules.
//!
//! Owns every live protocol decision. It must never do IO, read a clock, spawn a
//! thread, or use a global random number generator.
