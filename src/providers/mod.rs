//! Provider knowledge: routes and allow-lists, upstream URL joining, request inspection and surgical
//! edits, Bedrock translation, the upstream type (credential injection, signing, response translation),
//! key pools. Does no I/O and never imports `runtime`.

pub mod bedrock;
pub(crate) mod client;
pub(crate) mod errors;
pub(crate) mod key_pool;
pub mod request;
pub(crate) mod routes;
pub(crate) mod upstream;
