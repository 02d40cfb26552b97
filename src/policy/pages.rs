//! Dash Pages navigation: which path a pathname in the Pages router callback stands for, read
//! the way Dash resolves it, so that the path rules judge the page Dash will render.
//!
//! Dash (2.18 to 4.x: `_path_to_page(app.strip_relative_path(pathname))`) strips its
//! `requests_pathname_prefix` with a plain `startswith`, so under the prefix `/app/` the
//! pathname `/appadmin` renders the page `admin`; it never decodes the pathname and never
//! resolves `.` or `..`; and it matches a page's `path_template` with `fnmatch`, whose `*`
//! crosses `/`, so a template `/reports/<rid>` renders for `/reports/q1/x` and for
//! `/reports/..`. The gateway therefore:
//! - takes the app's prefix from the path of the callback request itself and strips it only
//!   at a segment boundary: a pathname outside it is no page of this app and is refused;
//! - refuses empty, `.` and `..` segments, as sent and once percent-decoded (a browser's
//!   `location.pathname` has none: it resolves dot segments itself), and control characters
//!   and backslashes;
//! - judges every reading of the pathname — percent-decoded, letter case ignored, with `;`
//!   parameters kept and with them dropped — by the path rules twice: with `*` as one segment,
//!   as for HTTP paths, and with `*` as one or more segments, so that a rule `/reports/*`
//!   covers everything a template `/reports/<rid>` can match. Every reading must be allowed.
//!
//! Judging more readings than Dash has can only refuse more, never less: a pathname Dash
//! renders as a literal page is judged as that page's path, and one that lands on a template
//! is judged with `*` spanning whatever the template's variables took.

/// A pathname the gateway cannot read as a page of this app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Dash Pages pathname: {0}")]
pub struct PageError(pub &'static str);

/// The app's prefix as Dash routes it: the path of a request to one of its endpoints without
/// the endpoint's own last segment (`/app/_dash-update-component` → `/app/`).
pub fn app_prefix(forward: &str) -> &str {
    match forward.rfind('/') {
        Some(i) => &forward[..=i],
        None => "/",
    }
}

/// The readings of `pathname` (under the app's `prefix`) that the path rules must all allow:
/// each a whole gateway path as lower-cased, decoded segments.
pub fn readings(prefix: &str, pathname: &str) -> Result<Vec<Vec<String>>, PageError> {
    if !pathname.starts_with('/') {
        return Err(PageError("not an absolute path"));
    }
    if pathname.contains(['\\']) || pathname.chars().any(char::is_control) {
        return Err(PageError("backslash or control character"));
    }
    let base = prefix.trim_end_matches('/');
    let rest = pathname
        .strip_prefix(base)
        .ok_or(PageError("outside the app's prefix"))?;
    // `/appadmin` under `/app/`: Dash would strip `/app` and render `admin`.
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(PageError("outside the app's prefix"));
    }
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    // One trailing slash is how browsers spell a directory-like URL; more is an empty segment.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut decoded: Vec<String> = Vec::new();
    if !rest.is_empty() {
        for raw in rest.split('/') {
            if matches!(raw, "" | "." | "..") {
                return Err(PageError("empty or dot segment"));
            }
            let text = percent_decode(raw)?;
            for piece in text.split('/') {
                if matches!(piece, "" | "." | "..")
                    || piece.contains('\\')
                    || piece.chars().any(char::is_control)
                {
                    return Err(PageError("empty or dot segment once decoded"));
                }
                decoded.push(piece.to_lowercase());
            }
        }
    }
    let base_segments: Vec<String> = base
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s).map(|d| d.to_lowercase()))
        .collect::<Result<_, _>>()?;
    let literal: Vec<String> = base_segments.iter().chain(&decoded).cloned().collect();
    let mut out = vec![literal];
    if decoded.iter().any(|s| s.contains(';')) {
        // As the HTTP path rules read it: `;parameters` dropped.
        let mut dropped = base_segments;
        for s in &decoded {
            let kept = s.split(';').next().unwrap_or("");
            if matches!(kept, "" | "." | "..") {
                return Err(PageError("empty or dot segment without its parameters"));
            }
            dropped.push(kept.to_owned());
        }
        out.push(dropped);
    }
    Ok(out)
}

/// Decode `%XX` once, as HTTP paths are ([`super::path`]); a malformed escape or bytes that
/// are not UTF-8 are refused.
fn percent_decode(raw: &str) -> Result<String, PageError> {
    super::path::percent_decode_strict(raw).map_err(|e| match e {
        super::path::PathError::NotUtf8 => PageError("not UTF-8 once decoded"),
        _ => PageError("malformed percent-escape"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(prefix: &str, p: &str) -> Result<Vec<String>, PageError> {
        readings(prefix, p).map(|rs| rs.iter().map(|r| format!("/{}", r.join("/"))).collect())
    }

    #[test]
    fn prefixes_are_stripped_at_a_segment_boundary() {
        assert_eq!(app_prefix("/app/_dash-update-component"), "/app/");
        assert_eq!(app_prefix("/_dash-update-component"), "/");
        assert_eq!(read("/app/", "/app/admin"), Ok(vec!["/app/admin".into()]));
        assert_eq!(read("/app/", "/app"), Ok(vec!["/app".into()]));
        assert_eq!(read("/app/", "/app/"), Ok(vec!["/app".into()]));
        assert_eq!(read("/", "/"), Ok(vec!["/".into()]));
        assert_eq!(read("/", "/Admin/"), Ok(vec!["/admin".into()]));
        for outside in ["/appadmin", "/ap", "/other/admin", "/APP/admin", "/"] {
            assert_eq!(
                read("/app/", outside),
                Err(PageError("outside the app's prefix")),
                "{outside}"
            );
        }
    }

    #[test]
    fn dot_and_empty_segments_are_refused_as_sent_and_decoded() {
        for bad in [
            "/reports/..",
            "/reports/.",
            "/./admin",
            "//admin",
            "/admin//",
            "/a//b",
            "/reports/%2e%2e",
            "/reports/%2E.",
            "/reports/x%2F..",
            "/reports/x%2F%2Fy",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/%zz",
            "/%ff",
            "/reports/;x",
            "/reports/..;x",
        ] {
            assert!(read("/", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_reading_is_returned() {
        assert_eq!(
            read("/", "/%61dmin/x%2Fy"),
            Ok(vec!["/admin/x/y".into()]),
            "decoded once"
        );
        assert_eq!(
            read("/", "/admin;x/Users"),
            Ok(vec!["/admin;x/users".into(), "/admin/users".into()])
        );
        assert_eq!(
            read("/caf%C3%A9/", "/caf%C3%A9/x"),
            Ok(vec!["/café/x".into()])
        );
    }
}
