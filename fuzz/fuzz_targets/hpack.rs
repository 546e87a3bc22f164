//! The HTTP/2 server's HPACK decoder on arbitrary header blocks, its valid fields
//! re-encoded by the answer side's encoder and decoded again unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_server::fuzzing::hpack(data));
