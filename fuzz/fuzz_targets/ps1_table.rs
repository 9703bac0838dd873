#![no_main]

use etd_fuzz::entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::ps1_table(data));
