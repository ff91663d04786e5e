//! Mutual TLS on SBI: an NF configured with `mtls = true` serves only clients presenting a
//! certificate issued by the testbed CA (`tls_ca`); an NF's own SBI client presents the
//! NF's certificate. Test material: `tests/mtls/` (see its README).

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::{db, NfApp, NfContext};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mtls")
}

fn mtls_config() -> TestbedConfig {
    let mut cfg = TestbedConfig::load_default().unwrap();
    // Transport only: no NRF runs here to issue access tokens.
    cfg.oauth2.enabled = false;
    cfg.tls_ca = Some(dir().join("ca.crt"));
    for name in ["amf", "cmp"] {
        let nf = cfg.nf.get_mut(name).unwrap();
        nf.tls_cert = Some(dir().join("nf.crt"));
        nf.tls_key = Some(dir().join("nf.key"));
        nf.mtls = true;
    }
    cfg.validate().unwrap();
    cfg
}

fn client(identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(dir().join("ca.crt")).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir().join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(dir().join(format!("{name}.key"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn an_mtls_nf_serves_only_clients_with_a_testbed_certificate() {
    let cfg = Arc::new(mtls_config());
    let db = db::connect("sqlite::memory:").await.unwrap();
    let ctx = NfContext::ephemeral(cfg.clone(), "amf", db.clone())
        .await
        .unwrap();
    let router = Router::new().route("/namf-test/v1/ping", get(|| async { "pong" }));
    let app = NfApp::new("amf").service(
        "namf-test",
        router,
        utoipa::openapi::OpenApi::new(
            utoipa::openapi::Info::new("t", "1"),
            utoipa::openapi::Paths::new(),
        ),
    );
    let running = ctx.launch_with_profile(app.build(), None).await.unwrap();
    let url = format!("{}/namf-test/v1/ping", running.api_root);
    assert!(url.starts_with("https://"), "{url}");

    // A client with the testbed's certificate is served, over HTTP/2.
    let r = client(Some("nf")).get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.text().await.unwrap(), "pong");
    // No client certificate: the handshake is refused.
    assert!(
        client(None).get(&url).send().await.is_err(),
        "served without a certificate"
    );
    // A certificate from another CA: refused too.
    assert!(
        client(Some("rogue")).get(&url).send().await.is_err(),
        "served a certificate of an untrusted CA"
    );
    // Another NF's own SBI client presents its certificate and is served.
    let other = NfContext::ephemeral(cfg, "cmp", db).await.unwrap();
    let resp = other.client.get(url.clone()).send().await.unwrap();
    assert_eq!(&resp.body[..], b"pong");
    running.stop().await;
}

#[test]
fn mtls_without_a_ca_or_certificate_is_a_config_error() {
    let mut cfg = mtls_config();
    cfg.tls_ca = None;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("nf.amf.mtls") || e.contains("nf.cmp.mtls"),
        "{e}"
    );
    let mut cfg = mtls_config();
    cfg.nf.get_mut("amf").unwrap().tls_cert = None;
    cfg.nf.get_mut("amf").unwrap().tls_key = None;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("nf.amf.mtls"));
}
