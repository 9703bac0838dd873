#![no_main]

use etd_fuzz::entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::targets_csv(data));
