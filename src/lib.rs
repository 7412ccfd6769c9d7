//! aibridged: a thread-per-core AI gateway. The binary (`main.rs`) is a thin CLI over this library so that
//! tests, benches and fuzz targets link the same parsers and the same runtime.

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod logging;
pub mod mock;
pub mod providers;
pub mod records;
pub mod relay;
pub mod runtime;
pub mod server;
pub mod sink;
pub mod sse;
