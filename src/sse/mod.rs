//! Server-sent events: a zero-copy scanner over relayed chunks and the per-API observers that pick usage,
//! tool calls and thoughts out of a response (stream or JSON body). Pure over bytes: no I/O, never fails a
//! relay — oddities become fields of the `Observation`, not errors.
