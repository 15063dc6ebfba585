#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dat_fuzz::data(data));
