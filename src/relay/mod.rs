//! Drives one request through its phases (parse, auth, route, inspect, upstream, relay + observe, record).
//! The only module that sees runtime, providers, sse and sink together.
