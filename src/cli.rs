//! Command-line interface (clap): `aibridged server`, `aibridged tokens create|list|revoke`.
