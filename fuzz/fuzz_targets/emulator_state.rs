#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlpolicy::fuzz::emulator_state(data));
