//! TLS on the listener, with certificate reload.

use crate::support::{Gateway, Options, PASSWORD, TestResult, Upstream, eventually};

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM, certificate DER).
fn self_signed() -> Result<(String, String, Vec<u8>), Box<dyn std::error::Error>> {
    let key = rcgen::KeyPair::generate()?;
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
}

async fn served_cert(client: &reqwest::Client, url: &str) -> Option<Vec<u8>> {
    let r = client.get(url).send().await.ok()?;
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

#[tokio::test]
async fn serves_tls_and_reloads_the_certificate() -> TestResult {
    let up = Upstream::start().await?;
    let (cert_a, key_a, der_a) = self_signed()?;
    let gw = Gateway::start_with(
        Options::new(&up.url).tls(&cert_a, &key_a),
        &[("alice", &[])],
    )
    .await?;
    assert!(gw.base.starts_with("https://"));
    let c = gw.client();
    let jar = gw.login("alice", PASSWORD).await?;
    let r = c
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let seen: serde_json::Value = r.json().await?;
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(
        served_cert(&c, &gw.url("/auth/healthz")).await,
        Some(der_a.clone())
    );

    // A broken pair is refused and the running certificate stays.
    std::fs::write(
        gw.dir.path().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n",
    )?;
    let reported = eventually(std::time::Duration::from_secs(15), || async {
        gw.log().contains("new TLS certificate rejected")
    })
    .await;
    assert!(reported);
    assert_eq!(served_cert(&c, &gw.url("/auth/healthz")).await, Some(der_a));

    // A rotated pair is picked up without a restart (new connections get it).
    let (cert_b, key_b, der_b) = self_signed()?;
    std::fs::write(gw.dir.path().join("tls.key"), &key_b)?;
    std::fs::write(gw.dir.path().join("tls.crt"), &cert_b)?;
    let trusting_b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_b.as_bytes())?)
        .tls_info(true)
        .build()?;
    let rotated = eventually(std::time::Duration::from_secs(15), || async {
        served_cert(&trusting_b, &gw.url("/auth/healthz"))
            .await
            .as_deref()
            == Some(der_b.as_slice())
    })
    .await;
    assert!(rotated, "the new certificate is served");
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(gw.url("/auth/healthz").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    Ok(())
}
