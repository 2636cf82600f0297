//! The adapter's calls natively against a real moto, through a tiny blocking HTTP/1.1 client
//! on `std::net`. Skipped (passing) unless `AWS_LIVE_URL` (`http://127.0.0.1:PORT`),
//! `AWS_LIVE_ACCESS_KEY_ID` and `AWS_LIVE_SECRET_ACCESS_KEY` are set, for a moto started with
//! signature checks on (`INITIAL_NO_AUTH_ACTION_COUNT`) that holds the zone `tidemark.test.`.

use tidemark_sdk::{AdapterError, DnsRecord, RecordKind};

use super::api::Api;
use super::records;
use super::settings::Settings;

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
fn records_round_trip_on_a_real_moto_with_signatures_checked() {
    let Some(settings) = live(None) else {
        eprintln!("skipping: AWS_LIVE_URL is not set");
        return;
    };
    let api = Api::new(settings, &tidemark_sdk::http::StdIo);
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
    match records::list_zones(&Api::new(settings, &tidemark_sdk::http::StdIo)) {
        Err(AdapterError::Denied(m)) => {
            assert!(m.contains("SignatureDoesNotMatch"), "{m}");
            assert!(!m.contains(wrong) && !m.contains(&key), "{m}");
        }
        other => panic!("expected denied, got {other:?}"),
    }
}
