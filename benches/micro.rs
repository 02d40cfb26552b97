//! Micro-benchmarks of the per-request work: token verification (full and cached), the
//! revocation check (empty and with a million entries), path normalisation and policy match
//! (100 and 10 000 rules), Dash callback body parsing and the CSRF check.
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

criterion_group!(benches, tokens, policies, csrf_check);
criterion_main!(benches);
