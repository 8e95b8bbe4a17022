#![no_main]
//! `fiamma::fuzzing::groth16`: see that function for the input layout and the properties.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fiamma::fuzzing::groth16(data));
