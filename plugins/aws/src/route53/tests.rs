//! The adapter's calls against a fake Route 53 kept in memory (hosted zones, record sets,
//! AWS's rules for `UPSERT` and `DELETE`), with canned answers put in front of it to test
//! throttling, garbage and refusals, and every request it was sent kept for checking.

use std::cell::RefCell;
use std::collections::VecDeque;

use tidemark_sdk::http::Response;
use tidemark_sdk::{AdapterError, AdapterResult, DnsRecord, RecordKind};

use super::api::Api;
use super::records;
use super::settings::Settings;
use super::xml::RecordSet;
use tidemark_sdk::http::Io;

const ORIGIN: &str = "http://127.0.0.1:5055";
const KEY_ID: &str = "AKIATESTKEY000000001";
const SECRET: &str = "test/secret+key0000000000000000000000000";

/// One request as sent: method, path with query, headers, body.
type Sent = (String, String, Vec<(String, String)>, String);

/// A fake Route 53: zones (id, name, private) and sets (zone id, set).
struct Fake {
    zones: Vec<(String, String, bool)>,
    sets: RefCell<Vec<(String, RecordSet)>>,
    /// Answers given before the fake itself answers, in order.
    canned: RefCell<VecDeque<(u16, String)>>,
    sent: RefCell<Vec<Sent>>,
    slept: RefCell<Vec<u64>>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            zones: vec![
                ("Z1".into(), "tidemark.test.".into(), false),
                ("Z2".into(), "sub.tidemark.test.".into(), true),
            ],
            sets: RefCell::new(Vec::new()),
            canned: RefCell::new(VecDeque::new()),
            sent: RefCell::new(Vec::new()),
            slept: RefCell::new(Vec::new()),
        }
    }

    fn with_set(self, zone: &str, name: &str, rtype: &str, ttl: u32, values: &[&str]) -> Fake {
        self.sets.borrow_mut().push((
            zone.into(),
            RecordSet {
                name: name.into(),
                rtype: rtype.into(),
                ttl: Some(ttl),
                values: values.iter().map(|v| v.to_string()).collect(),
                alias: None,
                set_identifier: None,
            },
        ));
        self
    }

    fn then(&self, status: u16, body: &str) {
        self.canned.borrow_mut().push_back((status, body.into()));
    }

    /// Puts what the fake answers now in front, so it is answered after the state changed.
    fn replay(&self, method: &str, path: &str, query: &str) {
        let (status, body) = self.answer(method, path, query, "");
        self.then(status, &body);
    }

    fn changes(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .filter(|(m, ..)| m == "POST")
            .map(|(.., body)| body.clone())
            .collect()
    }

    fn set(&self, name: &str, rtype: &str) -> Option<RecordSet> {
        self.sets
            .borrow()
            .iter()
            .find(|(_, s)| s.name == name && s.rtype == rtype)
            .map(|(_, s)| s.clone())
    }

    fn answer(&self, method: &str, path: &str, query: &str, body: &str) -> (u16, String) {
        let param = |key: &str| {
            query.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == key).then(|| v.replace("%2A", "*"))
            })
        };
        if path == "/2013-04-01/hostedzone" {
            let zones: String = self
                .zones
                .iter()
                .map(|(id, name, private)| {
                    format!(
                        "<HostedZone><Id>/hostedzone/{id}</Id><Name>{name}</Name><Config>\
                         <PrivateZone>{private}</PrivateZone></Config></HostedZone>"
                    )
                })
                .collect();
            return (
                200,
                format!(
                    "<ListHostedZonesResponse><HostedZones>{zones}</HostedZones>\
                     <IsTruncated>false</IsTruncated></ListHostedZonesResponse>"
                ),
            );
        }
        let rest = path.strip_prefix("/2013-04-01/hostedzone/").unwrap();
        let (zone, _) = rest.split_once('/').unwrap();
        if !self.zones.iter().any(|(id, ..)| id == zone) {
            return (404, error("NoSuchHostedZone", "No hosted zone"));
        }
        if method == "GET" {
            let name = param("name").unwrap_or_default();
            let rtype = param("type").unwrap_or_default();
            let max: usize = param("maxitems").unwrap().parse().unwrap();
            let mut sets: Vec<RecordSet> = self
                .sets
                .borrow()
                .iter()
                .filter(|(z, _)| z == zone)
                .map(|(_, s)| s.clone())
                .filter(|s| (s.name.clone(), s.rtype.clone()) >= (name.clone(), rtype.clone()))
                .collect();
            sets.sort_by(|a, b| (&a.name, &a.rtype).cmp(&(&b.name, &b.rtype)));
            let shown: String = sets.iter().take(max).map(set_xml).collect();
            let next = sets
                .get(max)
                .map_or("<IsTruncated>false</IsTruncated>".to_string(), |n| {
                    format!(
                        "<IsTruncated>true</IsTruncated><NextRecordName>{}</NextRecordName>\
                         <NextRecordType>{}</NextRecordType>",
                        n.name, n.rtype
                    )
                });
            return (
                200,
                format!(
                    "<ListResourceRecordSetsResponse><ResourceRecordSets>{shown}\
                     </ResourceRecordSets>{next}</ListResourceRecordSetsResponse>"
                ),
            );
        }
        let doc = roxmltree::Document::parse(body).unwrap();
        let text = |tag: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == tag)
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_string()
        };
        let wanted = RecordSet {
            name: text("Name"),
            rtype: text("Type"),
            ttl: text("TTL").parse().ok(),
            values: doc
                .descendants()
                .filter(|n| n.tag_name().name() == "Value")
                .filter_map(|n| n.text().map(String::from))
                .collect(),
            alias: None,
            set_identifier: None,
        };
        let mut sets = self.sets.borrow_mut();
        let at = sets
            .iter()
            .position(|(z, s)| z == zone && s.name == wanted.name && s.rtype == wanted.rtype);
        match (text("Action").as_str(), at) {
            ("UPSERT", Some(i)) => sets[i].1 = wanted,
            ("UPSERT", None) => sets.push((zone.into(), wanted)),
            ("DELETE", Some(i)) if sets[i].1 == wanted => {
                sets.remove(i);
            }
            ("DELETE", _) => {
                return (
                    400,
                    "<InvalidChangeBatch><Messages><Message>Tried to delete resource record \
                     set but it was not found</Message></Messages></InvalidChangeBatch>"
                        .into(),
                );
            }
            (other, _) => panic!("action {other}"),
        }
        (
            200,
            "<ChangeResourceRecordSetsResponse><ChangeInfo><Id>/change/C1</Id><Status>PENDING\
             </Status></ChangeInfo></ChangeResourceRecordSetsResponse>"
                .into(),
        )
    }
}

fn set_xml(s: &RecordSet) -> String {
    let values: String = s
        .values
        .iter()
        .map(|v| format!("<ResourceRecord><Value>{v}</Value></ResourceRecord>"))
        .collect();
    let name = s.name.replace('*', r"\052");
    format!(
        "<ResourceRecordSet><Name>{name}</Name><Type>{}</Type><TTL>{}</TTL><ResourceRecords>\
         {values}</ResourceRecords></ResourceRecordSet>",
        s.rtype,
        s.ttl.unwrap()
    )
}

fn error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         </ErrorResponse>"
    )
}

impl Io for Fake {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response> {
        let target = url
            .strip_prefix(ORIGIN)
            .expect("a request off the endpoint");
        let body = String::from_utf8(body.to_vec()).unwrap();
        self.sent.borrow_mut().push((
            method.into(),
            target.into(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body.clone(),
        ));
        let (status, text) = match self.canned.borrow_mut().pop_front() {
            Some(canned) => canned,
            None => {
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                self.answer(method, path, query, &body)
            }
        };
        Ok(Response {
            status,
            headers: vec![],
            body: text.into_bytes(),
        })
    }
    fn now_ms(&self) -> u64 {
        1_440_938_160_000
    }
    fn sleep_ms(&self, ms: u64) {
        self.slept.borrow_mut().push(ms);
    }
    fn log(&self, _: tidemark_sdk::http::LogLevel, _: &str) {}
}

fn api(fake: &Fake) -> Api<'_> {
    let settings = Settings::parse(
        Some(ORIGIN.into()),
        None,
        Some(KEY_ID.into()),
        Some(SECRET.into()),
        None,
    )
    .unwrap();
    Api::new(settings, fake)
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
fn zones_are_listed_once_each_with_the_final_dot() {
    let fake = Fake::new();
    assert_eq!(
        records::list_zones(&api(&fake)).unwrap(),
        ["tidemark.test.", "sub.tidemark.test."]
    );
    let sent = fake.sent.borrow();
    let (method, target, headers, _) = &sent[0];
    assert_eq!(
        (method.as_str(), target.as_str()),
        ("GET", "/2013-04-01/hostedzone?maxitems=100")
    );
    let auth = &headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20150830/us-east-1/route53/aws4_request"
        )),
        "{auth}"
    );
    assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
    assert!(!headers.iter().any(|(_, v)| v.contains(SECRET)));
}

#[test]
fn zone_lists_are_followed_page_by_page() {
    let fake = Fake::new();
    fake.then(200, "<ListHostedZonesResponse><HostedZones><HostedZone><Id>/hostedzone/A</Id><Name>a.test.</Name></HostedZone></HostedZones><IsTruncated>true</IsTruncated><NextMarker>m/1==</NextMarker></ListHostedZonesResponse>");
    assert_eq!(
        records::list_zones(&api(&fake)).unwrap(),
        ["a.test.", "tidemark.test.", "sub.tidemark.test."]
    );
    assert_eq!(
        fake.sent.borrow()[1].1,
        "/2013-04-01/hostedzone?marker=m%2F1%3D%3D&maxitems=100"
    );
}

#[test]
fn a_record_reads_back_only_when_name_and_type_match_exactly() {
    let fake = Fake::new()
        .with_set(
            "Z1",
            "db.tidemark.test.",
            "A",
            60,
            &["192.0.2.7", "192.0.2.8"],
        )
        .with_set(
            "Z1",
            "db.tidemark.test.",
            "CNAME",
            60,
            &["x.tidemark.test."],
        )
        .with_set("Z1", "*.tidemark.test.", "A", 30, &["192.0.2.9"]);
    let api = api(&fake);
    let got = records::get(&api, "", "DB.tidemark.test", RecordKind::A)
        .unwrap()
        .unwrap();
    assert_eq!(got.name, "db.tidemark.test.");
    assert_eq!(got.values, ["192.0.2.7", "192.0.2.8"]);
    assert_eq!(got.ttl, 60);
    // AAAA of the name: Route 53 answers the CNAME after it, which is not the record.
    assert!(
        records::get(&api, "", "db.tidemark.test.", RecordKind::Aaaa)
            .unwrap()
            .is_none()
    );
    // The wildcard comes back as \052 and is decoded.
    let wild = records::get(&api, "tidemark.test", "*.tidemark.test.", RecordKind::A)
        .unwrap()
        .unwrap();
    assert_eq!(wild.values, ["192.0.2.9"]);
    assert!(fake.sent.borrow().iter().any(|(_, t, ..)| t
        == "/2013-04-01/hostedzone/Z1/rrset?maxitems=1&name=%2A.tidemark.test.&type=A"));
}

#[test]
fn the_zone_is_chosen_by_the_shared_rules() {
    let fake = Fake::new();
    let api = api(&fake);
    records::upsert(
        &api,
        "",
        &record("x.sub.tidemark.test", RecordKind::A, &["192.0.2.1"], 5),
    )
    .unwrap();
    assert!(fake.changes()[0].contains("<Name>x.sub.tidemark.test.</Name>"));
    assert!(
        fake.sent
            .borrow()
            .iter()
            .any(|(m, t, ..)| m == "POST" && t == "/2013-04-01/hostedzone/Z2/rrset/")
    );
    for (zone, name, wanted) in [
        (
            "tidemark.test.",
            "x.sub.tidemark.test.",
            "belongs to zone sub.tidemark.test.",
        ),
        ("tidemark.test.", "db.elsewhere.invalid.", "outside zone"),
    ] {
        match records::get(&api, zone, name, RecordKind::A) {
            Err(AdapterError::Invalid(m)) => assert!(m.contains(wanted), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    match records::get(&api, "nope.invalid.", "www.nope.invalid.", RecordKind::A) {
        Err(AdapterError::NotFound(m)) => {
            assert!(m.contains("Route 53 at http://127.0.0.1:5055"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn upsert_writes_canonical_values_and_repeating_it_is_harmless() {
    let fake = Fake::new();
    let api = api(&fake);
    let entry = record(
        "db.tidemark.test",
        RecordKind::Aaaa,
        &["2001:DB8::1", "2001:db8:0::1", "2001:db8::2"],
        300,
    );
    records::upsert(&api, "", &entry).unwrap();
    records::upsert(&api, "", &entry).unwrap();
    let held = fake.set("db.tidemark.test.", "AAAA").unwrap();
    assert_eq!(held.values, ["2001:db8::1", "2001:db8::2"]);
    assert_eq!(held.ttl, Some(300));
    assert_eq!(fake.sets.borrow().len(), 1);
    assert!(
        fake.changes()
            .iter()
            .all(|c| c.contains("<Action>UPSERT</Action>"))
    );
    // Values not of their kind never reach Route 53.
    let bad = record("db.tidemark.test", RecordKind::A, &["not-an-ip"], 5);
    assert!(
        matches!(records::upsert(&api, "", &bad), Err(AdapterError::Invalid(m)) if m.contains("not-an-ip"))
    );
    assert_eq!(fake.changes().len(), 2);
}

#[test]
fn a_cname_beside_other_data_is_a_conflict_before_anything_is_sent() {
    let fake = Fake::new()
        .with_set("Z1", "db.tidemark.test.", "A", 60, &["192.0.2.7"])
        .with_set(
            "Z1",
            "web.tidemark.test.",
            "CNAME",
            60,
            &["db.tidemark.test."],
        );
    let api = api(&fake);
    let cname = record(
        "db.tidemark.test",
        RecordKind::Cname,
        &["web.tidemark.test"],
        60,
    );
    match records::upsert(&api, "", &cname) {
        Err(AdapterError::Conflict(m)) => assert!(m.contains("beside its A set"), "{m}"),
        other => panic!("{other:?}"),
    }
    let a = record("web.tidemark.test", RecordKind::A, &["192.0.2.1"], 60);
    match records::upsert(&api, "", &a) {
        Err(AdapterError::Conflict(m)) => assert!(m.contains("is a CNAME"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.changes().is_empty());
    // Replacing a CNAME by a CNAME is fine.
    let again = record(
        "web.tidemark.test",
        RecordKind::Cname,
        &["other.tidemark.test"],
        60,
    );
    records::upsert(&api, "", &again).unwrap();
    assert_eq!(
        fake.set("web.tidemark.test.", "CNAME").unwrap().values,
        ["other.tidemark.test."]
    );
}

#[test]
fn conflicts_are_judged_on_sets_of_the_same_name_only() {
    let set = |name: &str, rtype: &str| RecordSet {
        name: name.into(),
        rtype: rtype.into(),
        ttl: Some(1),
        values: vec!["v".into()],
        alias: None,
        set_identifier: None,
    };
    let listed = [set("db.t.", "AAAA"), set("dc.t.", "CNAME")];
    assert!(records::conflict("db.t.", RecordKind::Cname, &listed).is_some());
    assert!(records::conflict("db.t.", RecordKind::A, &listed).is_none());
    assert!(records::conflict("dc.t.", RecordKind::Aaaa, &listed).is_some());
    assert!(records::conflict("dc.t.", RecordKind::Cname, &listed).is_none());
    assert!(records::conflict("dd.t.", RecordKind::Cname, &listed).is_none());
}

#[test]
fn delete_repeats_the_current_set_and_an_absent_one_is_removed_already() {
    let fake = Fake::new().with_set(
        "Z1",
        "db.tidemark.test.",
        "A",
        77,
        &["192.0.2.7", "192.0.2.8"],
    );
    let api = api(&fake);
    records::delete(&api, "", "db.tidemark.test", RecordKind::A).unwrap();
    assert_eq!(fake.set("db.tidemark.test.", "A"), None);
    let change = &fake.changes()[0];
    assert!(
        change.contains("<Action>DELETE</Action>")
            && change.contains("<TTL>77</TTL>")
            && change.contains("192.0.2.8"),
        "{change}"
    );
    records::delete(&api, "", "db.tidemark.test", RecordKind::A).unwrap();
    assert_eq!(fake.changes().len(), 1, "nothing sent for an absent record");
}

#[test]
fn a_delete_refused_because_the_set_went_away_meanwhile_succeeds() {
    let fake = Fake::new().with_set("Z1", "db.tidemark.test.", "A", 60, &["192.0.2.7"]);
    let api = api(&fake);
    // Zones, the read, then the DELETE is refused as another session removes the set.
    fake.replay("GET", "/2013-04-01/hostedzone", "");
    fake.replay(
        "GET",
        "/2013-04-01/hostedzone/Z1/rrset",
        "maxitems=1&name=db.tidemark.test.&type=A",
    );
    fake.then(
        400,
        "<InvalidChangeBatch><Messages><Message>Tried to delete resource record set but it \
         was not found</Message></Messages></InvalidChangeBatch>",
    );
    fake.sets.borrow_mut().clear();
    records::delete(&api, "", "db.tidemark.test", RecordKind::A).unwrap();
}

#[test]
fn alias_and_routing_sets_are_left_alone() {
    let fake = Fake::new();
    fake.sets.borrow_mut().push((
        "Z1".into(),
        RecordSet {
            name: "lb.tidemark.test.".into(),
            rtype: "A".into(),
            ttl: None,
            values: vec![],
            alias: Some("elb.example.com.".into()),
            set_identifier: None,
        },
    ));
    let api = api(&fake);
    fake.replay("GET", "/2013-04-01/hostedzone", "");
    fake.then(200, "<ListResourceRecordSetsResponse><ResourceRecordSets><ResourceRecordSet><Name>lb.tidemark.test.</Name><Type>A</Type><AliasTarget><HostedZoneId>Z9</HostedZoneId><DNSName>elb.example.com.</DNSName></AliasTarget></ResourceRecordSet></ResourceRecordSets><IsTruncated>false</IsTruncated></ListResourceRecordSetsResponse>");
    assert!(matches!(
        records::get(&api, "", "lb.tidemark.test", RecordKind::A),
        Err(AdapterError::Unsupported(m)) if m.contains("alias to elb.example.com.")
    ));
    fake.replay("GET", "/2013-04-01/hostedzone", "");
    fake.then(200, "<ListResourceRecordSetsResponse><ResourceRecordSets><ResourceRecordSet><Name>lb.tidemark.test.</Name><Type>A</Type><AliasTarget><HostedZoneId>Z9</HostedZoneId><DNSName>elb.example.com.</DNSName></AliasTarget></ResourceRecordSet></ResourceRecordSets><IsTruncated>false</IsTruncated></ListResourceRecordSetsResponse>");
    let entry = record("lb.tidemark.test", RecordKind::A, &["192.0.2.1"], 60);
    assert!(matches!(
        records::upsert(&api, "", &entry),
        Err(AdapterError::Conflict(_))
    ));
    assert!(fake.changes().is_empty());
}

#[test]
fn throttling_is_retried_briefly_then_transient() {
    let fake = Fake::new();
    let throttled = error("Throttling", "Rate exceeded");
    fake.then(400, &throttled);
    fake.then(503, "");
    assert_eq!(records::list_zones(&api(&fake)).unwrap().len(), 2);
    assert_eq!(*fake.slept.borrow(), [100, 200]);
    fake.slept.borrow_mut().clear();
    for _ in 0..4 {
        fake.then(400, &throttled);
    }
    assert!(matches!(
        records::list_zones(&api(&fake)),
        Err(AdapterError::Transient(m)) if m.contains("Throttling")
    ));
    assert_eq!(
        *fake.slept.borrow(),
        [100, 200, 400],
        "under a second in all"
    );
}

#[test]
fn refusals_and_garbage_map_to_the_contract_without_secrets() {
    let fake = Fake::new();
    fake.then(403, include_str!("../testdata/route53/error_signature.xml"));
    match records::list_zones(&api(&fake)) {
        Err(AdapterError::Denied(m)) => {
            assert!(m.contains("SignatureDoesNotMatch"), "{m}");
            assert!(!m.contains(SECRET) && !m.contains(KEY_ID), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // A server echoing the key id back has it scrubbed.
    fake.then(
        403,
        &error("AccessDenied", &format!("User {KEY_ID} may not")),
    );
    match records::list_zones(&api(&fake)) {
        Err(AdapterError::Denied(m)) => assert!(m.contains("User <secret> may not"), "{m}"),
        other => panic!("{other:?}"),
    }
    fake.then(
        200,
        "<!doctype html><html><body>captive portal</body></html>",
    );
    match records::list_zones(&api(&fake)) {
        Err(AdapterError::Internal(m)) => {
            assert!(m.contains("reading the hosted zones of Route 53"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let fake = Fake::new().with_set("Z1", "db.tidemark.test.", "A", 60, &["192.0.2.7"]);
    fake.replay("GET", "/2013-04-01/hostedzone", "");
    fake.then(200, "not xml at all");
    match records::get(&api(&fake), "", "db.tidemark.test", RecordKind::A) {
        Err(AdapterError::Internal(m)) => {
            assert!(m.contains("the records of zone tidemark.test. (Z1)"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
