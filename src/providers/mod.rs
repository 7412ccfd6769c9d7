//! Provider knowledge: routes and allow-lists, upstream URL joining, credential injection, request
//! inspection and surgical edits, Bedrock translation, key pools. Does no I/O and never imports `runtime`.

pub mod client;
pub mod request;
