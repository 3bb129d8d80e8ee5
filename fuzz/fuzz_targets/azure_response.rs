#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlpolicy::fuzz::azure_response(data));
