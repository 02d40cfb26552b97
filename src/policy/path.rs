//! The one place that normalises request paths. Rules are matched against, and the upstream
//! receives, the same canonical path, so the gateway and the app cannot disagree about which
//! resource a request names (the class of bypass behind Pomerium CVE-2023-33189 and Authelia
//! CVE-2021-32637).
//!
//! Canonical form: percent-decoded once (as a WSGI server decodes `PATH_INFO`), `\` read as
//! `/`, `;parameters` removed from every segment, empty and `.` segments dropped, `..`
//! resolved (never above the root), then re-encoded. A trailing slash is kept in the
//! forwarded path but ignored for matching; matching is case-insensitive.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters escaped when a decoded segment is put back into a path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path has a malformed percent-escape")]
    BadEscape,
    #[error("path is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("path contains control characters")]
    Control,
}

/// A request path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// What the upstream receives (re-encoded, trailing slash kept).
    pub forward: String,
    /// Decoded, lower-cased segments, for matching.
    pub segments: Vec<String>,
}

impl NormalPath {
    /// The last segment, e.g. `_dash-update-component`.
    pub fn last(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes once; malformed escapes are an error (parsers disagree about them).
pub(super) fn percent_decode_strict(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes
                .get(i + 1)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEscape)?;
            let lo = bytes
                .get(i + 2)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEscape)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Normalise a request path (without its query).
pub fn normalize(raw: &str) -> Result<NormalPath, PathError> {
    if !raw.starts_with('/') && !raw.starts_with('\\') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = percent_decode_strict(raw)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    let decoded = decoded.replace('\\', "/");
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        trailing = false;
        match seg {
            "" | "." => trailing = true,
            ".." => {
                kept.pop();
                trailing = true;
            }
            s => kept.push(s),
        }
    }
    let mut forward = String::with_capacity(decoded.len() + 1);
    for seg in &kept {
        forward.push('/');
        forward.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if forward.is_empty() || trailing {
        forward.push('/');
    }
    Ok(NormalPath {
        forward,
        segments: kept.iter().map(|s| s.to_lowercase()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fwd(p: &str) -> String {
        normalize(p)
            .map(|n| n.forward)
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn examples() {
        for (raw, want) in [
            ("/", "/"),
            ("", "error: path is not absolute"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("//admin", "/admin"),
            ("/admin/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/admin;x", "/admin"),
            ("/admin;x/y;z=1", "/admin/y"),
            ("/a/./b/../c", "/a/c"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a%2Fb", "/a/b"),
            ("/a%5cb", "/a/b"),
            ("\\admin", "/admin"),
            ("/a%252Fb", "/a%252Fb"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/a b", "/a%20b"),
            ("/%2e%2e/admin", "/admin"),
            ("/x/%2e", "/x/"),
            ("/%", "error: path has a malformed percent-escape"),
            ("/%zz", "error: path has a malformed percent-escape"),
            ("/%ff", "error: path is not valid UTF-8 once decoded"),
            ("/a%00b", "error: path contains control characters"),
            ("/a%0ab", "error: path contains control characters"),
            ("/a%3Fb", "/a%3Fb"),
            ("/a%23b", "/a%23b"),
        ] {
            assert_eq!(fwd(raw), want, "{raw:?}");
        }
        let n = normalize("/Admin/Users/")
            .map(|n| n.segments)
            .unwrap_or_default();
        assert_eq!(n, vec!["admin", "users"]);
    }

    /// Encodings of `/admin` a client might try: every character may be percent-encoded (any
    /// hex case), dot segments, repeated slashes, backslashes, `;` parameters, letter case
    /// and a trailing slash.
    fn admin_variant() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(any::<(bool, bool, bool)>(), 5),
            0usize..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(chars, slashes, dot, dotdot, param, trailing, backslash)| {
                    let mut s = String::new();
                    s.push_str(if backslash { "\\" } else { "/" });
                    for _ in 0..slashes {
                        s.push('/');
                    }
                    if dot {
                        s.push_str("./");
                    }
                    if dotdot {
                        s.push_str("x/%2e%2E/");
                    }
                    for (c, (encode, upper_hex, upper)) in "admin".chars().zip(chars) {
                        let c = if upper { c.to_ascii_uppercase() } else { c };
                        if encode {
                            let e = format!("%{:02x}", c as u32);
                            s.push_str(&if upper_hex { e.to_uppercase() } else { e });
                        } else {
                            s.push(c);
                        }
                    }
                    if param {
                        s.push_str(";jsessionid=1");
                    }
                    if trailing {
                        s.push('/');
                    }
                    s
                },
            )
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(raw in "[/a-zA-Z0-9%;.\\\\ _~é-]{0,40}") {
            if let Ok(once) = normalize(&format!("/{raw}")) {
                let twice = normalize(&once.forward);
                prop_assert_eq!(twice.as_ref().map(|n| &n.forward), Ok(&once.forward));
                prop_assert_eq!(twice.map(|n| n.segments), Ok(once.segments));
            }
        }

        #[test]
        fn no_encoding_of_admin_escapes(raw in admin_variant()) {
            let n = normalize(&raw);
            prop_assert_eq!(n.map(|n| n.segments), Ok(vec!["admin".to_owned()]), "{}", raw);
        }
    }
}
