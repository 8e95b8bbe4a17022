#![no_main]
//! `fiamma::fuzzing::staking_request`: see that function for the input layout and the properties.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fiamma::fuzzing::staking_request(data));
