//! `tidemark serve` over HTTPS (rustls) configured from a TOML file, and its refusals: plain
//! HTTP beyond loopback, unreadable certificate files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::api::{Server, serve_with, token};
use crate::harness::Lab;

/// A throwaway CA and a server certificate it signed for 127.0.0.1, written as PEM files
/// `cert.pem` and `key.pem` in `dir`; returns the CA certificate for clients to trust.
fn certificates(dir: &std::path::Path) -> CertificateDer<'static> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    ca.der().clone()
}

/// One HTTPS GET trusting only `ca`; returns (status, JSON body).
fn https_get(
    server: &Server,
    ca: &CertificateDer<'static>,
    path: &str,
    token: &str,
) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(&server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut response = Vec::new();
    // A peer closing without close_notify is an error after the data; the data counts.
    let _ = tls.read_to_end(&mut response);
    crate::api::parse_response(&response)
}

/// `tidemark serve ARGS` expected to fail at once: its stderr.
fn refused(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> String {
    let args: Vec<&str> = ["serve"].into_iter().chain(args.iter().copied()).collect();
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let out = lab.run_env(&args, &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serves_https_from_a_config_file_and_refuses_plain_http_beyond_loopback() {
    let lab = Lab::with_vm();
    let viewer = token(&lab, "viewer");
    let ca = certificates(lab.dir.path());
    // Relative paths in the file are relative to the file.
    let config = lab.dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
            crate::daemons::port()
        ),
    )
    .unwrap();
    let mut server = serve_with(&lab, &["--config", config.to_str().unwrap()], &[], "https");
    let (status, vms) = https_get(&server, &ca, "/v1/vms", &viewer);
    assert_eq!(status, 200, "{vms}");
    assert_eq!(vms[0]["name"], "app", "{vms}");
    assert_eq!(https_get(&server, &ca, "/v1/vms", "wrong").0, 401);
    // The CLI as a client over HTTPS: trusting the CA it is told of, and only then.
    let url = format!("https://{}", server.addr);
    let elsewhere = Lab::empty();
    let client = |ca_env: Option<String>| {
        let mut env = vec![
            ("TIDEMARK_SERVER", url.clone()),
            ("TIDEMARK_TOKEN", viewer.clone()),
        ];
        if let Some(ca) = ca_env {
            env.push(("TIDEMARK_CA_CERT", ca));
        }
        elsewhere.run_env(&["vm", "list"], &env)
    };
    let ca_file = lab.dir.path().join("ca.pem").to_str().unwrap().to_string();
    let trusted = client(Some(ca_file));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(crate::harness::json(&trusted)[0]["name"], "app");
    let untrusted = client(None);
    assert!(!untrusted.status.success());
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("TIDEMARK_CA_CERT"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(plain, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    // Graceful shutdown works over TLS too.
    assert!(server.terminate().success());
    drop(server);

    // Beyond loopback, plain HTTP is refused; with TLS files it is accepted (below).
    let error = refused(&lab, &["--listen", "0.0.0.0:0"], &[]);
    assert!(error.contains("requires TLS"), "{error}");
    // The flag beats the file's `listen`; the environment beats the file's key.
    let effective = lab.ok_env(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--print-config",
            "--listen",
            "0.0.0.0:1",
        ],
        &[("TIDEMARK_TLS_KEY", "/elsewhere/key.pem".to_string())],
    );
    assert_eq!(effective["listen"], "0.0.0.0:1", "{effective}");
    assert_eq!(effective["tls"]["key"], "/elsewhere/key.pem", "{effective}");
    assert_eq!(
        effective["tls"]["cert"],
        lab.dir.path().join("cert.pem").to_str().unwrap(),
        "{effective}"
    );
    assert_eq!(effective["max_running_jobs"], 256, "{effective}");
    // Bad files: a clear error naming the file, exit 1.
    let missing = refused(
        &lab,
        &["--config", config.to_str().unwrap()],
        &[("TIDEMARK_TLS_KEY", "/nonexistent/key.pem")],
    );
    assert!(missing.contains("/nonexistent/key.pem"), "{missing}");
    let not_a_key = refused(
        &lab,
        &["--config", config.to_str().unwrap()],
        &[("TIDEMARK_TLS_KEY", config.to_str().unwrap())],
    );
    assert!(not_a_key.contains("serve.toml"), "{not_a_key}");
    let other_key = lab.dir.path().join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let mismatch = refused(
        &lab,
        &["--config", config.to_str().unwrap()],
        &[("TIDEMARK_TLS_KEY", other_key.to_str().unwrap())],
    );
    assert!(mismatch.contains("other-key.pem"), "{mismatch}");
    let typo = lab.dir.path().join("typo.toml");
    std::fs::write(&typo, "listen = \"127.0.0.1:0\"\nmax_runing_jobs = 3\n").unwrap();
    let unknown = refused(&lab, &["--config", typo.to_str().unwrap()], &[]);
    assert!(
        unknown.contains("max_runing_jobs") && unknown.contains("typo.toml"),
        "{unknown}"
    );
}
