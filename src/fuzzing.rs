//! Entry points for the cargo-fuzz targets in `fuzz/` that exercise code private to the crate (the
//! configuration loader, the gzip observer). Each is a thin call into the real code path, so the fuzzers
//! test what the server runs; nothing here is used by the server itself. Hidden from the docs: not an API.

use std::collections::HashMap;

use crate::config::{self, args::ServerArgs};
use crate::relay::decode::{Feed, Gunzip};

/// What a configuration that loaded looks like, for the `config_env` target's invariants.
#[derive(Debug)]
pub struct LoadedConfig {
    /// Each provider instance's name and number of central keys, in index order.
    pub providers: Vec<(String, usize)>,
    /// The largest number of central keys one provider may have.
    pub max_keys: usize,
    /// The longest provider name accepted.
    pub max_name_len: usize,
}

/// Loads the `server` configuration from `env` alone (no flags, no YAML file) through the real loader,
/// as `aibridged server` does with the process environment. `Err` is the operator-facing message.
pub fn load_config_from_env(env: &HashMap<String, String>) -> Result<LoadedConfig, String> {
    let loaded = config::load_with_yaml(&ServerArgs::default(), env, None).map_err(|e| e.to_string())?;
    Ok(LoadedConfig {
        providers: loaded.config.providers.iter().map(|p| (p.name.clone(), p.keys.len())).collect(),
        max_keys: config::MAX_KEYS,
        max_name_len: config::MAX_NAME_LEN,
    })
}

/// What the gzip observer fed to the inner observer: how many decoded bytes, a digest of them, and why
/// observation stopped early (`None`: the whole body was decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GunzipOutcome {
    pub decoded: usize,
    pub digest: u64,
    pub stopped: Option<&'static str>,
}

/// The decoded-bytes cap the relay observes gzip bodies with.
pub const GUNZIP_CAP: usize = crate::relay::decode::MAX_DECODED;

/// Counts and digests (FNV-1a) what the decoder hands on, so a fuzz run does not hold decoded bodies.
#[derive(Default)]
struct Digest {
    decoded: usize,
    hash: u64,
}

impl Feed for Digest {
    fn feed(&mut self, decoded: &[u8]) {
        if self.decoded == 0 {
            self.hash = 0xcbf2_9ce4_8422_2325;
        }
        self.decoded += decoded.len();
        for &b in decoded {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Feeds `chunks` of a gzip-coded body through the relay's gzip observer with decoded-bytes cap `cap`.
pub fn gunzip_observe(chunks: &[&[u8]], cap: usize) -> GunzipOutcome {
    let mut g = Gunzip::new(Digest::default(), cap);
    for c in chunks {
        g.on_chunk(c);
    }
    let (d, stopped) = g.finish();
    GunzipOutcome { decoded: d.decoded, digest: d.hash, stopped: stopped.map(|s| s.as_str()) }
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;
