//! Any request body, in any of the three inbound dialects (the first byte picks one):
//! parsing must not panic, and what parses must render for every provider dialect.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_translate::fuzzing::request(data);
});
