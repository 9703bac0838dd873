#![no_main]

use etd_fuzz::entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::listing_html(data));
