//! Provider knowledge: routes and allow-lists, upstream URL joining, credential injection, request
//! inspection and surgical edits, Bedrock translation, key pools. Does no I/O and never imports `runtime`.

pub mod bedrock;
pub mod client;
pub mod errors;
pub mod key_pool;
pub mod request;
pub mod routes;
