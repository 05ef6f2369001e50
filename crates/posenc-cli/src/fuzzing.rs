//! Crate root of the posenc-cli modules that the fuzz targets in `fuzz/` drive (the CLI's value
//! parsers, the config inspector, the explorer's router). `posenc` itself does not use this file:
//! only `fuzz/Cargo.toml` names it, so the modules compile there as a library, from the same
//! sources as the binary.

pub mod core_cmds;

pub mod serve;
pub mod tables;
