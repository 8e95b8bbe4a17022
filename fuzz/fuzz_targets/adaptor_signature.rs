#![no_main]
//! `fiamma::fuzzing::adaptor_signature`: see that function for the input layout and the properties.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fiamma::fuzzing::adaptor_signature(data));
