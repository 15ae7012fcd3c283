//! The in-place JSON editor on any bytes: no panic, and an edit of an object keeps it
//! valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_translate::fuzzing::json_edit(data);
});
