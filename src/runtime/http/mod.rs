//! HTTP/1.1 wire codec, pure over bytes (no sockets): request and response heads, body framing decoders.
