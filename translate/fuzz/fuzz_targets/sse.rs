//! Any bytes a provider streams, split anywhere: the SSE parser, every dialect's
//! decoder and every dialect's encoder must neither panic nor grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_translate::fuzzing::stream(data);
});
