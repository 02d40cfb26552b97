//! The one-way order of imports, written once and checked: every `crate::` path in `src/`
//! must name a module that comes later in [`ORDER`] than the module it is written in (or the
//! same module). That makes import circles impossible and keeps leaves from reaching up. A
//! new top-level module must be placed here. Unit-test files (`tests.rs`) are exempt: they may
//! assemble the whole state to run one stage for real.

/// Top-level modules, from the command line down to the leaves.
const ORDER: &[&str] = &[
    // The command line.
    "cli",
    // The listener, and the assembly of the shared state.
    "server",
    "state",
    // The request pipeline and the `/auth` endpoints, and the Dash ways in they guard.
    "pipeline",
    "auth",
    "dash_socket",
    "dash_mcp",
    "dash_guard",
    // Proxy, session, sign-in, policy.
    "proxy",
    "session",
    "sign_in",
    "policy",
    // Store, directory, token, and what they stand on.
    "store",
    "directory",
    "db",
    "tls",
    "token",
    "metrics",
    // Settings and leaves.
    "config",
    "error",
    "html",
    "http_util",
    "clock",
    "names",
    "cidr",
];

#[cfg(test)]
mod tests {
    use super::ORDER;
    use std::path::Path;

    /// `(file, top-level module, modules it names)` for every source file under `src/`.
    fn imports(dir: &Path, out: &mut Vec<(String, String, Vec<String>)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                imports(&path, out)?;
                continue;
            }
            // Unit tests (`tests.rs`) may assemble the whole state to run a stage for real.
            if path.extension().is_none_or(|e| e != "rs")
                || path.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let rel = path.strip_prefix(&src).unwrap_or(&path);
            let top = rel
                .components()
                .next()
                .map(|c| {
                    c.as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_owned()
                })
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)?;
            let mut named = Vec::new();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        named.push(name);
                    }
                }
            }
            out.push((rel.display().to_string(), top, named));
        }
        Ok(())
    }

    #[test]
    fn imports_run_one_way() -> std::io::Result<()> {
        let mut files = Vec::new();
        imports(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        )?;
        let rank = |m: &str| ORDER.iter().position(|o| *o == m);
        let mut wrong = Vec::new();
        for (file, top, named) in &files {
            if matches!(top.as_str(), "lib" | "main" | "import_order") {
                continue;
            }
            let Some(from) = rank(top) else {
                wrong.push(format!("{file}: module `{top}` is not in ORDER"));
                continue;
            };
            for m in named {
                match rank(m) {
                    Some(to) if to > from || m == top => {}
                    Some(_) => {
                        wrong.push(format!("{file}: `{top}` imports `{m}`, which is above it"))
                    }
                    None => {
                        wrong.push(format!("{file}: names `crate::{m}`, which is not in ORDER"))
                    }
                }
            }
        }
        assert!(files.len() > 50, "read the source tree");
        assert!(wrong.is_empty(), "{wrong:#?}");
        Ok(())
    }
}
