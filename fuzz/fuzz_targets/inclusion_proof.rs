#![no_main]
//! `fiamma::fuzzing::inclusion_proof`: see that function for the input layout and the properties.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fiamma::fuzzing::inclusion_proof(data));
