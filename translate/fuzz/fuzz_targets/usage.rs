//! A usage object read by the plain reader and by serde: the same answer, or none.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_translate::fuzzing::usage_scan(data);
});
