//! Path normalisation and post-login redirect targets: no panics; normalising is idempotent
//! and never leaves a dot segment; a redirect target is `/` or a single-slash local path.
#![no_main]

use dashgate::auth::redirect::safe_next;
use dashgate::policy::path::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = normalize(raw) {
        assert!(p.segments.iter().all(|s| s != "." && s != ".."), "{raw:?}");
        match normalize(&p.forward) {
            Ok(again) => assert_eq!(again.segments, p.segments, "{raw:?}"),
            Err(e) => panic!("{raw:?} normalised to {:?}, which fails: {e}", p.forward),
        }
    }
    let next = safe_next(Some(raw), "/auth");
    assert!(next.starts_with('/'), "{next:?}");
    assert!(!next.starts_with("//") && !next.contains('\\'), "{next:?}");
    assert!(
        next.is_ascii() && !next.chars().any(|c| c.is_ascii_control()),
        "{next:?}"
    );
});
