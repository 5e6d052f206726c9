//! Arbitrary bytes through every parser and builder entry point of the SIP
//! message layer (the same surface the property tests cover).
//!
//!     cargo install cargo-fuzz
//!     cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time=60

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rser::sip::exercise::exercise(data);
});
