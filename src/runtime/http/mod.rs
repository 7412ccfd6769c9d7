//! HTTP/1.1 wire codec, pure over bytes (no sockets): request and response heads, body framing decoders,
//! and the encoding helpers the relay writes with. "Not enough bytes yet" is `Ok(None)`, never an error.
mod body;
mod encode;
mod head;

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
