//! Micro-benchmarks of the per-request work: token verification (full and cached), the
//! revocation check (empty and with a million entries), path normalisation and policy match
//! (100 and 10 000 rules), Dash callback body parsing, the CSRF check, and removing hidden
//! components from a 5 MB Dash layout.
//! `cargo bench --bench micro`.

// A benchmark whose setup fails has nothing to measure: it stops with the reason.
#![allow(clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dashgate::policy::Policy;
use dashgate::policy::dash;
use dashgate::policy::path::normalize;
use dashgate::session::csrf;
use dashgate::store::{Revocation, RevocationKind, RevocationSet};
use dashgate::token::jwt::{self, AccessClaims, Expect};
use dashgate::token::keys::KeySet;
use dashgate::token::verified::VerifiedTokens;

const NOW: i64 = 1_800_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "dashgate".into(),
        aud: "dashgate".into(),
        sub: "alice".into(),
        roles: vec!["analyst".into(), "viewer".into()],
        permissions: vec!["reports:read".into(), "salaries:read".into()],
        sid: "Nt-zKPxzuhZ1erKiOvR0yw".into(),
        jti: "ERt53KJHOsHyhQHEJXqOlA".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
    }
}

fn expect() -> Expect<'static> {
    Expect {
        typ: jwt::ACCESS_TYP,
        issuer: "dashgate",
        audience: "dashgate",
        now: NOW + 10,
        leeway: 30,
    }
}

fn policy(n: usize) -> Policy {
    let mut p = String::from("default = \"authenticated\"\n");
    p.push_str("[[rule]]\ndash_outputs = [\"salary-*\", { type = \"salary-row\" }]\npermissions = [\"salaries:read\"]\n");
    for i in 0..n.saturating_sub(2) {
        p.push_str(&format!(
            "[[rule]]\npaths = [\"/section-{i}/**\", \"/team-{i}/*/report\"]\nroles = [\"role-{i}\"]\n"
        ));
    }
    p.push_str("[[rule]]\npaths = [\"/reports/**\"]\npermissions = [\"reports:read\"]\n");
    match Policy::parse(&p) {
        Ok(p) => p,
        Err(e) => panic!("benchmark policy: {e}"),
    }
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let keys = KeySet::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let token = jwt::sign(&keys, jwt::ACCESS_TYP, &claims()).unwrap_or_else(|e| panic!("{e}"));
    let expect = expect();
    c.bench_function("token: full verification (Ed25519 + claims)", |b| {
        b.iter(|| jwt::verify_access(black_box(&token), &keys, &expect))
    });
    let cache = VerifiedTokens::default();
    let _ = cache.verify(&token, &keys, &expect);
    c.bench_function(
        "token: cached verification (repeat of a verified token)",
        |b| b.iter(|| cache.verify(black_box(&token), &keys, &expect)),
    );

    let claims = claims();
    let empty = RevocationSet::default();
    c.bench_function("revocation check: empty set", |b| {
        b.iter(|| empty.is_revoked(black_box(&claims)))
    });
    let big = RevocationSet::default();
    for i in 0..1_000_000 {
        big.insert(Revocation {
            kind: if i % 2 == 0 {
                RevocationKind::Token
            } else {
                RevocationKind::Session
            },
            value: format!("revoked-{i:08}"),
            created_at: NOW,
            expires_at: NOW + 3600,
        });
    }
    c.bench_function("revocation check: 1 000 000 entries", |b| {
        b.iter(|| big.is_revoked(black_box(&claims)))
    });
}

fn policies(c: &mut Criterion) {
    let who = claims();
    for n in [100, 10_000] {
        let p = policy(n);
        c.bench_function(&format!("path: normalise + match, {n} rules"), |b| {
            b.iter(|| {
                let path =
                    normalize(black_box("/reports/2024/q3")).unwrap_or_else(|e| panic!("{e}"));
                p.check_path(&path.segments, &http::Method::GET, Some(&who))
            })
        });
    }
    let p = policy(100);
    let body = br#"{"output":"..salary-table.data...summary.children..","outputs":[{"id":"salary-table","property":"data"},{"id":"summary","property":"children"}],"inputs":[{"id":"dept","property":"value","value":"sales"},{"id":{"type":"filter","index":3},"property":"value","value":[1,2,3]}],"changedPropIds":["dept.value"],"state":[{"id":"page-size","property":"value","value":50}]}"#;
    c.bench_function("Dash callback: parse body + check outputs", |b| {
        b.iter(|| {
            let cb = dash::parse(black_box(body)).unwrap_or_else(|e| panic!("{e}"));
            p.check_outputs(&cb.outputs, Some(&who))
        })
    });
}

fn csrf_check(c: &mut Criterion) {
    let key = [7u8; 32];
    let sid = "Nt-zKPxzuhZ1erKiOvR0yw";
    let token =
        csrf::issue(&key, csrf::Binding::Session(sid), NOW).unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("CSRF: signed double-submit check", |b| {
        b.iter(|| {
            csrf::check(
                &key,
                Some(black_box(&token)),
                Some(black_box(&token)),
                csrf::Binding::Session(sid),
                NOW,
                None,
            )
        })
    });
}

/// A Dash layout of about 5 MB: 12 000 table rows of components with text, every 50th one a
/// hidden `salary-…` component with children of its own.
fn big_layout() -> Vec<u8> {
    let c = |kind: &str, props: serde_json::Value| serde_json::json!({"type": kind, "namespace": "dash_html_components", "props": props});
    let rows: Vec<serde_json::Value> = (0..12_000)
        .map(|i| {
            let cells = vec![
                c("Td", serde_json::json!({"children": format!("employee {i}"), "style": {"padding": "8px 10px"}})),
                c("Td", serde_json::json!({"children": "Engineering", "className": "dept"})),
                c("Td", serde_json::json!({"children": format!("{:>12}", i * 37), "style": {"textAlign": "right"}})),
            ];
            if i % 50 == 0 {
                c("Tr", serde_json::json!({"id": format!("salary-{i}"), "children": cells}))
            } else {
                c("Tr", serde_json::json!({"id": format!("row-{i}"), "children": cells}))
            }
        })
        .collect();
    let root = c(
        "Div",
        serde_json::json!({"id": "root", "children": [c("Table", serde_json::json!({"children": rows}))]}),
    );
    serde_json::to_vec(&root).unwrap_or_else(|e| panic!("{e}"))
}

fn pruning(c: &mut Criterion) {
    use dashgate::proxy::filter::{Filter, rewrite};
    use std::sync::Arc;
    let policy = Arc::new(
        Policy::parse("[[rule]]\ndash_components = [\"salary-*\"]\nroles = [\"admin\"]\n")
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let viewer = AccessClaims {
        roles: vec!["viewer".to_owned()],
        ..claims()
    };
    let hidden = policy
        .hidden_components(Some(&viewer))
        .unwrap_or_else(|| panic!("the viewer fails the rule"));
    let body = bytes::Bytes::from(big_layout());
    assert!(body.len() > 5_000_000, "{} bytes", body.len());
    let mut group = c.benchmark_group("prune");
    group.sample_size(20);
    group.bench_function(
        format!(
            "5 MB layout ({} bytes): scan + replace 240 hidden rows",
            body.len()
        ),
        |b| {
            b.iter(|| {
                let (parts, ()) = http::Response::new(()).into_parts();
                rewrite(parts, black_box(body.clone()), &hidden, Filter::Layout, &[])
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        },
    );
    // The floor for any pass over the same bytes: serde_json checking them and building nothing.
    group.bench_function("reference: serde_json validates the same layout", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok())
    });
    group.finish();
}

criterion_group!(benches, tokens, policies, csrf_check, pruning);
criterion_main!(benches);
