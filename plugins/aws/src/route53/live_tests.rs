//! The adapter's calls natively against a real moto, through a tiny blocking HTTP/1.1 client
//! on `std::net`. Skipped (passing) unless `AWS_LIVE_URL` (`http://127.0.0.1:PORT`),
//! `AWS_LIVE_ACCESS_KEY_ID` and `AWS_LIVE_SECRET_ACCESS_KEY` are set, for a moto started with
//! signature checks on (`INITIAL_NO_AUTH_ACTION_COUNT`) that holds the zone `tidemark.test.`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tidemark_sdk::http::Response;
use tidemark_sdk::{AdapterError, AdapterResult, DnsRecord, RecordKind};

use super::api::Api;
use super::records;
use super::settings::Settings;
use tidemark_sdk::http::Io;

/// HTTP/1.1 over a fresh connection per request (`Connection: close`), plain `http://` only.
struct StdIo;

impl Io for StdIo {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response> {
        let rest = url.strip_prefix("http://").expect("a plain http:// URL");
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let transient = |e: std::io::Error| AdapterError::Transient(format!("{url}: {e}"));
        let mut stream = TcpStream::connect(authority).map_err(transient)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(transient)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(transient)?;
        stream.write_all(body).map_err(transient)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(transient)?;
        parse_answer(&answer).ok_or_else(|| AdapterError::Internal(format!("{url}: not HTTP")))
    }
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    fn log(&self, _: tidemark_sdk::http::LogLevel, _: &str) {}
}

/// Status, headers and body of a whole HTTP/1.1 answer (chunked bodies decoded).
fn parse_answer(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(end + 2..end + 2 + size)?);
            rest = rest.get(end + 4 + size..)?;
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// The live moto's settings, or `None` to skip.
fn live(secret_override: Option<&str>) -> Option<Settings> {
    let url = std::env::var("AWS_LIVE_URL").ok()?;
    let key = std::env::var("AWS_LIVE_ACCESS_KEY_ID").ok()?;
    let secret = std::env::var("AWS_LIVE_SECRET_ACCESS_KEY").ok()?;
    let secret = secret_override.map(String::from).unwrap_or(secret);
    Some(Settings::parse(Some(url), None, Some(key), Some(secret), None).unwrap())
}

fn record(name: &str, kind: RecordKind, values: &[&str], ttl: u32) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        kind,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl,
    }
}

#[test]
fn answers_are_parsed_whole_or_chunked() {
    let plain = parse_answer(b"HTTP/1.1 403 FORBIDDEN\r\nContent-Length: 2\r\n\r\nno").unwrap();
    assert_eq!((plain.status, plain.body.as_slice()), (403, &b"no"[..]));
    let chunked = parse_answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(chunked.body, b"abcde");
    assert!(parse_answer(b"garbage").is_none());
}

#[test]
fn records_round_trip_on_a_real_moto_with_signatures_checked() {
    let Some(settings) = live(None) else {
        eprintln!("skipping: AWS_LIVE_URL is not set");
        return;
    };
    let api = Api::new(settings, &StdIo);
    let zones = records::list_zones(&api).unwrap();
    assert!(zones.contains(&"tidemark.test.".to_string()), "{zones:?}");
    let name = format!("live-{}.tidemark.test.", std::process::id());
    let other = format!("other-{}.tidemark.test.", std::process::id());

    records::upsert(
        &api,
        "",
        &record(&name, RecordKind::A, &["192.0.2.7", "192.0.2.8"], 60),
    )
    .unwrap();
    let got = records::get(&api, "", &name, RecordKind::A)
        .unwrap()
        .unwrap();
    assert_eq!((got.values.len(), got.ttl), (2, 60));
    // Replacing, not adding; repeating is harmless.
    let second = record(&name, RecordKind::A, &["198.51.100.9"], 30);
    records::upsert(&api, "tidemark.test.", &second).unwrap();
    records::upsert(&api, "tidemark.test.", &second).unwrap();
    let got = records::get(&api, "", &name, RecordKind::A)
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.values, got.ttl),
        (vec!["198.51.100.9".to_string()], 30)
    );
    // moto would take a CNAME beside the A; the adapter refuses it.
    let cname = record(&name, RecordKind::Cname, &["web.tidemark.test"], 60);
    assert!(matches!(
        records::upsert(&api, "", &cname),
        Err(AdapterError::Conflict(_))
    ));
    assert!(
        records::get(&api, "", &name, RecordKind::Cname)
            .unwrap()
            .is_none()
    );
    // And an A beside a CNAME.
    records::upsert(&api, "", &record(&other, RecordKind::Cname, &[&name], 60)).unwrap();
    assert!(matches!(
        records::upsert(
            &api,
            "",
            &record(&other, RecordKind::Aaaa, &["2001:db8::1"], 60)
        ),
        Err(AdapterError::Conflict(_))
    ));
    // AAAA of a name holding only an A: Route 53 answers the next set, which is not it.
    assert!(
        records::get(&api, "", &name, RecordKind::Aaaa)
            .unwrap()
            .is_none()
    );

    records::delete(&api, "", &name, RecordKind::A).unwrap();
    records::delete(&api, "", &name, RecordKind::A).unwrap();
    records::delete(&api, "", &other, RecordKind::Cname).unwrap();
    assert!(
        records::get(&api, "", &name, RecordKind::A)
            .unwrap()
            .is_none()
    );
    assert!(
        records::get(&api, "", &other, RecordKind::Cname)
            .unwrap()
            .is_none()
    );
    // Zones moto does not have are not-found.
    assert!(matches!(
        records::get(&api, "nope.invalid.", "www.nope.invalid.", RecordKind::A),
        Err(AdapterError::NotFound(_))
    ));
}

#[test]
fn a_wrong_secret_is_denied_by_a_real_moto_without_showing_it() {
    let wrong = "wrong/secret+0000000000000000000000000000";
    let Some(settings) = live(Some(wrong)) else {
        eprintln!("skipping: AWS_LIVE_URL is not set");
        return;
    };
    let key = settings.credentials.access_key_id.clone();
    match records::list_zones(&Api::new(settings, &StdIo)) {
        Err(AdapterError::Denied(m)) => {
            assert!(m.contains("SignatureDoesNotMatch"), "{m}");
            assert!(!m.contains(wrong) && !m.contains(&key), "{m}");
        }
        other => panic!("expected denied, got {other:?}"),
    }
}
