//! The origin client's response parser and body decoder (length, chunked, until close)
//! against hyper's client: the same status and body bytes whenever it reads an answer whole.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_server::fuzzing::response(data));
