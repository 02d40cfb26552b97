//! What a name looks like wherever it comes from: the one canonical form of a username or
//! role (`canonical_name`), of a permission (`canonical_permission`), and of a directory DN
//! (`normalize_dn`). A leaf: the configuration, the policy file, the directory and the sign-in
//! sources all read names through it.

/// Longest username, role or permission.
pub const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "names are 1 to 64 characters of a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit"
    )]
    Invalid,
}

/// Canonical form of a username or role name: lower-cased and restricted to a safe alphabet,
/// so that `Admin`, `admin` and look-alikes cannot be distinct accounts and a name can travel in
/// a header unescaped. Login applies the same function, so lookups are case-insensitive.
pub fn canonical_name(raw: &str) -> Result<String, NameError> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        })
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(name)
    } else {
        Err(NameError::Invalid)
    }
}

/// Canonical form of a permission: lower case `a-z 0-9 : . _ -`, 1 to 64 characters, starting
/// with a letter or digit (`salaries:read`).
pub fn canonical_permission(raw: &str) -> Result<String, PermissionNameError> {
    let p = raw.trim().to_ascii_lowercase();
    let ok = !p.is_empty()
        && p.len() <= MAX_USERNAME_LEN
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'.' | b'_' | b'-')
        });
    if ok { Ok(p) } else { Err(PermissionNameError) }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "permissions are 1 to 64 characters of a-z, 0-9, ':', '.', '_' and '-', starting with a letter or digit"
)]
pub struct PermissionNameError;

/// A DN in one spelling for comparisons: attribute names and values lower-cased (ASCII; both
/// Active Directory and OpenLDAP match DNs case-insensitively), spaces around `,` and `=`
/// removed. Escaped characters stay escaped.
pub fn normalize_dn(dn: &str) -> String {
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for ch in dn.chars() {
        if escaped {
            current.push(ch);
            escaped = false;
        } else if ch == '\\' {
            current.push(ch);
            escaped = true;
        } else if ch == ',' {
            rdns.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    rdns.push(current);
    rdns.iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
            None => rdn.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name(" Admin "), Ok("admin".to_owned()));
        assert_eq!(canonical_name("a.b_c-d@e"), Ok("a.b_c-d@e".to_owned()));
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a,b",
            "a\nb",
            "ädmin",
            "a\"b",
            &"x".repeat(65),
        ] {
            assert_eq!(canonical_name(bad), Err(NameError::Invalid), "{bad:?}");
        }
    }
}
