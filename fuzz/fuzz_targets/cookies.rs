//! Cookie headers: any bytes a client sends as `Cookie` are read without panicking, and
//! stripping the gateway's cookies leaves none of them behind.
#![no_main]

use dashgate::session::cookies::{self, CookieNames};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(header::COOKIE, value.clone());
    headers.append(header::COOKIE, value);
    let names = CookieNames::new(true);
    for (name, value) in cookies::pairs(&headers) {
        assert!(!name.contains(';') && !value.contains(';'));
    }
    let _ = cookies::get(&headers, &names.access);
    cookies::strip_ours(&mut headers, &names);
    assert!(cookies::get(&headers, &names.access).is_none());
    assert!(cookies::get(&headers, &names.refresh).is_none());
});
