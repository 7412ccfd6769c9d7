//! HTTP/1.1: the wire codec, pure over bytes (no sockets) — request and response heads, body framing
//! decoders, encoding helpers — and the two legs that drive it over connections: `server_leg` (reading
//! client requests, writing short answers) and `client_leg` (sending upstream requests, reading answer
//! heads). "Not enough bytes yet" is `Ok(None)`, never an error. Knows nothing of providers.
mod body;
pub(crate) mod client_leg;
mod encode;
mod head;
pub(crate) mod server_leg;

pub use body::ChunkedDecoder;
pub(crate) use body::{BodyDecoder, ChunkError};
pub use encode::write_chunk;
pub(crate) use encode::{
    is_connection_nominated, is_hop_by_hop, is_hop_by_hop_in, write_header, write_status_line, LAST_CHUNK,
};
pub use head::{parse_request_head, MAX_HEAD_BYTES};
pub(crate) use head::{parse_response_head, BodyKind, HeadError, Header, RequestHead, ResponseBody, ResponseHead};
