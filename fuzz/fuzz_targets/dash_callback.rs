//! Dash callback bodies (`/_dash-update-component`) and output keys: parsed without panicking,
//! and every Pages pathname that comes out is a string without `?` or `#`.
#![no_main]

use dashgate::policy::dash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cb) = dash::parse(data) {
        for p in &cb.page_paths {
            assert!(!p.contains(['?', '#']), "{p}");
        }
    }
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = dash::parse_output_key(key);
    }
});
