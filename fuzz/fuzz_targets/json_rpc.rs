#![no_main]
//! `fiamma::fuzzing::json_rpc`: see that function for the input layout and the properties.

/// LeakSanitizer suppressions: the kernel's log connection is leaked on purpose (the
/// kernel's logger is global and must live as long as the process, see
/// `btc::kernel::install_logger`), once per process; without this every run ends in a
/// "leak" report at exit.
#[no_mangle]
pub extern "C" fn __lsan_default_suppressions() -> *const std::ffi::c_char {
    c"leak:install_logger".as_ptr()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| fiamma::fuzzing::json_rpc(data));
