//! HTTP/1.1: the wire codec, pure over bytes (no sockets) — request and response heads, body framing
//! decoders, encoding helpers — and the two legs that drive it over connections: `server_leg` (reading
//! client requests, writing short answers) and `client_leg` (sending upstream requests, reading answer
//! heads). "Not enough bytes yet" is `Ok(None)`, never an error. Knows nothing of providers.
mod body;
pub mod client_leg;
mod encode;
mod head;
pub mod server_leg;

pub use body::{
    BodyDecoder, ChunkError, ChunkedDecoder, Decoded, LengthDecoder, MAX_CHUNK_EXT_BYTES, MAX_CHUNK_SIZE,
    MAX_TRAILER_BYTES,
};
pub use encode::{
    connection_has_token, is_connection_nominated, is_hop_by_hop, is_hop_by_hop_in, reason_phrase, write_chunk,
    write_decimal, write_header, write_status_line, LAST_CHUNK,
};
pub use head::{
    parse_request_head, parse_response_head, BodyKind, HeadError, Header, Malformed, RequestHead, ResponseBody,
    ResponseHead, MAX_HEADERS, MAX_HEAD_BYTES,
};
