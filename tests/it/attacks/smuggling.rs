//! Request smuggling and framing (RFC 9112 6.1 and 6.3, PortSwigger's request-smuggling
//! labs): no bytes a client hides in a body ever reach the app as a request of their own. A
//! request whose length is malformed or ambiguous is refused with a 4xx; one with both
//! `Content-Length` and `Transfer-Encoding: chunked` is read by its chunks alone (the
//! `Content-Length` dropped, as RFC 9112 6.1 allows) and its connection closed after the one
//! answer. Either way the connection is closed, so nothing after the ambiguity is parsed. The
//! target is a public path, so only framing stands between the attacker and the app; the
//! smuggled request goes to an admin-only path the attacker could not reach directly.

use crate::support::{Gateway, Options, RawAnswer, TestResult, Upstream, client, raw_exchange};

const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/public/**"]
public = true

[[rule]]
paths = ["/admin/**"]
roles = ["admin"]
"#;

const SMUGGLED: &str = "GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n";

async fn target() -> Result<(Upstream, Gateway), Box<dyn std::error::Error>> {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(Options::new(&up.url).policy(POLICY), &[]).await?;
    Ok((up, gw))
}

/// Send `raw`: the connection is closed after the answer, the app never sees the smuggled
/// request, the gateway keeps serving.
async fn not_smuggled(
    up: &Upstream,
    gw: &Gateway,
    raw: &str,
) -> Result<RawAnswer, Box<dyn std::error::Error>> {
    let answer = raw_exchange(gw.port, raw.as_bytes()).await?;
    assert!(answer.closed, "{raw:?}: the connection stayed open");
    assert!(
        up.seen().iter().all(|r| !r.contains("/admin")),
        "smuggled through: {:?}",
        up.seen()
    );
    assert_eq!(
        client().get(gw.url("/auth/healthz")).send().await?.status(),
        200
    );
    Ok(answer)
}

/// Send `raw`: one 4xx, nothing reaches the app, and the above.
async fn refused(up: &Upstream, gw: &Gateway, raw: &str) -> TestResult {
    let answer = not_smuggled(up, gw, raw).await?;
    let statuses = answer.statuses();
    assert!(
        statuses.len() == 1 && statuses.iter().all(|s| (400..500).contains(s)),
        "{raw:?} -> {statuses:?}: {}",
        answer.text()
    );
    assert_eq!(up.hits(), 0, "{raw:?} reached the app: {:?}", up.seen());
    Ok(())
}

/// The same request framed correctly reaches the app: the public path itself is open.
async fn control(up: &Upstream, gw: &Gateway) -> TestResult {
    let body = "a=1";
    let raw = format!(
        "POST /public/form HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_exchange(gw.port, raw.as_bytes()).await?;
    assert_eq!(answer.statuses(), vec![200], "{}", answer.text());
    assert!(up.seen().ends_with(&["POST /public/form".to_owned()]));
    Ok(())
}

#[tokio::test]
async fn content_length_with_transfer_encoding() -> TestResult {
    // CL.TE: a back end reading Content-Length would take the smuggled request as body, one
    // reading chunks as the next request; TE.CL the other way round. The gateway reads chunks,
    // forwards exactly the chunked body with one framing, answers once and closes.
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    let te_cl_body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    for (cl, body, te_first) in [
        (cl_te_body.len(), &cl_te_body, false),
        (4, &te_cl_body, false),
        (cl_te_body.len(), &cl_te_body, true),
    ] {
        let (up, gw) = target().await?;
        let (a, b) = (
            format!("Content-Length: {cl}"),
            "Transfer-Encoding: chunked".to_owned(),
        );
        let (first, second) = if te_first { (b, a) } else { (a, b) };
        let raw =
            format!("POST /public/form HTTP/1.1\r\nHost: x\r\n{first}\r\n{second}\r\n\r\n{body}");
        let answer = not_smuggled(&up, &gw, &raw).await?;
        assert_eq!(answer.statuses(), vec![200], "{}", answer.text());
        assert_eq!(up.seen(), vec!["POST /public/form".to_owned()]);
        let seen = answer.json()?;
        let headers = &seen["headers"];
        assert!(
            headers.get("content-length").is_none() || headers.get("transfer-encoding").is_none(),
            "both framings forwarded: {headers}"
        );
        let expected_body = if body == &te_cl_body { SMUGGLED } else { "" };
        assert_eq!(
            seen["body"], expected_body,
            "the app got the chunked body, as data"
        );
        control(&up, &gw).await?;
    }
    Ok(())
}

#[tokio::test]
async fn duplicate_content_length() -> TestResult {
    let body = format!("a=1{SMUGGLED}");
    for lengths in [
        format!("Content-Length: 3\r\nContent-Length: {}", body.len()),
        format!("Content-Length: 3, {}", body.len()),
        format!("Content-Length: {}\r\nContent-Length: 3", body.len()),
    ] {
        let (up, gw) = target().await?;
        let raw = format!("POST /public/form HTTP/1.1\r\nHost: x\r\n{lengths}\r\n\r\n{body}");
        refused(&up, &gw, &raw).await?;
        control(&up, &gw).await?;
    }
    Ok(())
}

#[tokio::test]
async fn obfuscated_transfer_encoding() -> TestResult {
    let body = format!("0\r\n\r\n{SMUGGLED}");
    for te in [
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding: identity, chunked, identity",
        "Transfer-Encoding:\x0bchunked",
        " Transfer-Encoding: chunked",
        "Transfer-Encoding\r\n : chunked",
    ] {
        let (up, gw) = target().await?;
        let raw = format!(
            "POST /public/form HTTP/1.1\r\nHost: x\r\n{te}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        refused(&up, &gw, &raw).await?;
        control(&up, &gw).await?;
    }
    Ok(())
}

#[tokio::test]
async fn malformed_content_length() -> TestResult {
    for cl in ["+3", "-1", "3 3", "0x3", "3.0", "99999999999999999999999"] {
        let (up, gw) = target().await?;
        let raw = format!(
            "POST /public/form HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\na=1{SMUGGLED}"
        );
        refused(&up, &gw, &raw).await?;
        control(&up, &gw).await?;
    }
    Ok(())
}

#[tokio::test]
async fn obsolete_line_folding() -> TestResult {
    // An identity header continued on the next line must not survive as anything.
    let (up, gw) = target().await?;
    let raw = "GET /public/x HTTP/1.1\r\nHost: x\r\nX-Forwarded-User: nobody\r\n admin\r\nConnection: close\r\n\r\n";
    refused(&up, &gw, raw).await?;
    control(&up, &gw).await
}

#[tokio::test]
async fn oversized_headers() -> TestResult {
    let (up, gw) = target().await?;
    // One huge header, many small ones, and a huge request line.
    let huge = format!(
        "GET /public/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(60)))
        .collect();
    let many = format!("GET /public/x HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let long_line = format!(
        "GET /public/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "c".repeat(64 * 1024)
    );
    for raw in [huge, many, long_line] {
        refused(&up, &gw, &raw).await?;
    }
    control(&up, &gw).await
}
