//! Test support shared by this crate's tests and the fuzz targets (feature
//! `testing`): the seeded whole-server simulator. Not part of the stable API.

pub mod simulation;
