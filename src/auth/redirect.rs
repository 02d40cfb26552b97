//! The one place that decides whether a post-login redirect target is safe.
//!
//! Only same-origin relative paths are followed: one leading `/` not followed by `/` or `\`,
//! no scheme, no userinfo, no control characters or whitespace, no backslashes and no dot
//! segments, checked on the raw value and on every percent-decoded form of it (browsers and
//! servers decode at different layers). The raw value must be ASCII (a `Location` header
//! carries no other bytes safely; real paths arrive percent-encoded), and no decoded form may
//! hold a non-ASCII character other than a letter or digit: lookalike slashes such as U+2215 or
//! U+FF0F, invisible format characters and exotic spaces are refused. Anything else goes to `/`.

use percent_encoding::percent_decode_str;

pub const MAX_NEXT_LEN: usize = 2048;

/// `next` if it is a safe same-origin path, otherwise `/`. `auth_prefix` targets (login, logout)
/// also go to `/`, to avoid loops.
pub fn safe_next(next: Option<&str>, auth_prefix: &str) -> String {
    match next {
        Some(n) if is_safe(n) && !targets_auth(n, auth_prefix) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn targets_auth(next: &str, prefix: &str) -> bool {
    let path = next
        .split(['?', '#'])
        .next()
        .unwrap_or(next)
        .to_ascii_lowercase();
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

fn is_safe(next: &str) -> bool {
    if next.is_empty() || next.len() > MAX_NEXT_LEN || !next.is_ascii() {
        return false;
    }
    let mut current = next.to_owned();
    // Up to three rounds of decoding catches double and triple encoding; a value that still
    // decodes further after that is refused outright.
    for _ in 0..4 {
        if !shape_ok(&current) {
            return false;
        }
        let decoded = match percent_decode_str(&current).decode_utf8() {
            Ok(d) => d.into_owned(),
            Err(_) => return false,
        };
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    false
}

fn shape_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    // Malformed percent-escapes are decoded differently by different parsers: refuse them.
    let escapes_ok = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| {
            bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        });
    if !escapes_ok {
        return false;
    }
    if bytes.first() != Some(&b'/') || matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return false;
    }
    if s.chars().any(|c| {
        c.is_control() || c.is_whitespace() || c == '\\' || (!c.is_ascii() && !c.is_alphanumeric())
    }) {
        return false;
    }
    let path = s.split(['?', '#']).next().unwrap_or(s);
    if path.contains('@') || path.contains(':') {
        return false;
    }
    !path.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_paths() {
        for ok in [
            "/",
            "/page",
            "/a/b?x=1&y=%2F",
            "/_dash-layout",
            "/reports/2024?tab=2#top",
            "/caf%C3%A9",
        ] {
            assert_eq!(safe_next(Some(ok), "/auth"), ok, "{ok}");
        }
    }

    #[test]
    fn refuses_open_redirects() {
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "https:evil.com",
            "http:/evil.com",
            "javascript:alert(1)",
            "/%2F/evil.com",
            "/%5Cevil.com",
            "%2F%2Fevil.com",
            "/%252F%252Fevil.com",
            "/\t/evil.com",
            "/\r\n/evil.com",
            "/ /evil.com",
            "/%09/evil.com",
            "/%0d%0a/evil.com",
            "/user@evil.com",
            "//user:pass@evil.com",
            "/@evil.com",
            "/..//evil.com",
            "/./",
            "/a/../..//evil.com",
            "evil.com",
            "",
            "/\u{3000}/evil.com",
            "/%E3%80%80/evil.com",
            "/%ff",
            "/%25252F%25252Fevil.com",
            "/auth/login",
            "/AUTH/logout?x",
            "/%2e%2e//evil.com",
            "/\u{2215}evil.com",
            "/%E2%88%95evil.com",
            "/%EF%BC%8F%EF%BC%8Fevil.com",
            "/%E2%80%8B/evil.com",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad), "/auth"), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None, "/auth"), "/");
    }
}
