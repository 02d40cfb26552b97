//! Policy files: any text is either a valid policy or a clean error, never a panic.
#![no_main]

use dashgate::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::parse(text);
    }
});
