#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vip_arbiter::fuzz_checks::config(data));
