//! Test support shared by this crate's tests and the fuzz targets (feature
//! `testing`): the reference model of the hub. Not part of the stable API.

pub mod model;
