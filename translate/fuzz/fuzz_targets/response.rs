//! Any complete answer a provider sends, in any dialect (the first byte picks one).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_translate::fuzzing::response(data);
});
