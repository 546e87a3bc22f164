//! The HTTP/1.1 fast path's request-head parser against hyper's server (same request or
//! left to hyper), with the head limit checked to the byte.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_server::fuzzing::request_head(data));
