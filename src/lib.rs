//! aibridged: a thread-per-core AI gateway. The binary (`main.rs`) is a thin CLI over this library so that
//! tests, benches and fuzz targets link the same parsers and the same runtime.

pub(crate) mod auth;
pub(crate) mod cli;
pub mod commands;
pub(crate) mod control;
// config/mod.rs is rewritten on another branch of issue 8; its unused re-exports go with that rewrite.
pub(crate) mod config;
pub(crate) mod db;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod logging;
pub mod metrics;
pub mod mock;
pub mod providers;
pub mod records;
pub(crate) mod relay;
pub mod runtime;
pub(crate) mod server;
pub mod sink;
pub mod sse;
pub(crate) mod state;
