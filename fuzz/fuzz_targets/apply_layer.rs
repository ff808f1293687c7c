//! Arbitrary bytes as a layer stream (tar, gzip or zstd by magic bytes).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(data);
});
