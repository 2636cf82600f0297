//! Route 53's XML: the answers the adapter reads (hosted zones, record sets, errors) parsed
//! without ever panicking on garbage, and the one request body it writes (a change batch).
//! Elements are matched by local name, so the namespace (which moto leaves off its errors)
//! does not matter.

use roxmltree::{Document, Node};

use super::names::decode;

/// The namespace of the 2013-04-01 API.
const NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// A hosted zone as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostedZone {
    /// The id without its `/hostedzone/` prefix, as paths use it.
    pub id: String,
    /// Lower case with the final dot, escapes decoded.
    pub name: String,
    /// Whether the zone is private to VPCs (listed like any other).
    pub private: bool,
}

/// One page of hosted zones.
#[derive(Debug, Clone, PartialEq)]
pub struct ZonePage {
    /// The zones of this page.
    pub zones: Vec<HostedZone>,
    /// The marker of the next page, when the list is truncated.
    pub next_marker: Option<String>,
}

/// A resource record set as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSet {
    /// Lower case with the final dot, escapes decoded.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `NS`, …
    pub rtype: String,
    /// Seconds; absent on alias sets.
    pub ttl: Option<u32>,
    /// The values, as Route 53 holds them.
    pub values: Vec<String>,
    /// The alias target's DNS name, when the set is an alias.
    pub alias: Option<String>,
    /// The set identifier of a weighted, latency, failover, … set.
    pub set_identifier: Option<String>,
}

/// One page of record sets.
#[derive(Debug, Clone, PartialEq)]
pub struct SetPage {
    /// The sets of this page, in the API's order.
    pub sets: Vec<RecordSet>,
    /// Name and type of the next set, when the list is truncated.
    pub next: Option<(String, String)>,
}

/// What an error answer says.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// E.g. `NoSuchHostedZone`, `InvalidChangeBatch`, `Throttling`.
    pub code: String,
    /// The service's message (messages of a change batch joined with `; `).
    pub message: String,
}

/// The hosted zones of a `ListHostedZonesResponse`.
pub fn parse_zones(body: &[u8]) -> Result<ZonePage, String> {
    let text = as_text(body)?;
    let doc = Document::parse(text).map_err(|e| not_xml(text, &e))?;
    let root = expect_root(&doc, "ListHostedZonesResponse")?;
    let mut zones = Vec::new();
    if let Some(list) = child(root, "HostedZones") {
        for zone in list.children().filter(|n| is(n, "HostedZone")) {
            let id = required(zone, "Id", "a hosted zone")?;
            let name = required(zone, "Name", &format!("hosted zone {id}"))?;
            let private = child(zone, "Config")
                .and_then(|c| text_of(c, "PrivateZone"))
                .is_some_and(|p| p.trim() == "true");
            zones.push(HostedZone {
                id: id.trim().trim_start_matches("/hostedzone/").to_string(),
                name: zone_name(&name),
                private,
            });
        }
    }
    let next_marker = truncated(root)
        .then(|| text_of(root, "NextMarker"))
        .flatten()
        .filter(|m| !m.trim().is_empty());
    if truncated(root) && next_marker.is_none() {
        return Err("the list is truncated but names no NextMarker".into());
    }
    Ok(ZonePage { zones, next_marker })
}

/// The record sets of a `ListResourceRecordSetsResponse`.
pub fn parse_sets(body: &[u8]) -> Result<SetPage, String> {
    let text = as_text(body)?;
    let doc = Document::parse(text).map_err(|e| not_xml(text, &e))?;
    let root = expect_root(&doc, "ListResourceRecordSetsResponse")?;
    let mut sets = Vec::new();
    if let Some(list) = child(root, "ResourceRecordSets") {
        for set in list.children().filter(|n| is(n, "ResourceRecordSet")) {
            let name = required(set, "Name", "a record set")?;
            let rtype = required(set, "Type", &format!("record set {name}"))?;
            let ttl = match text_of(set, "TTL") {
                None => None,
                Some(t) => Some(
                    t.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("record set {name} has TTL '{t}'"))?,
                ),
            };
            let values = child(set, "ResourceRecords")
                .map(|rs| {
                    rs.children()
                        .filter(|n| is(n, "ResourceRecord"))
                        .filter_map(|r| text_of(r, "Value"))
                        .collect()
                })
                .unwrap_or_default();
            sets.push(RecordSet {
                name: decode(&name).to_ascii_lowercase(),
                rtype: rtype.trim().to_string(),
                ttl,
                values,
                alias: child(set, "AliasTarget").and_then(|a| text_of(a, "DNSName")),
                set_identifier: text_of(set, "SetIdentifier"),
            });
        }
    }
    let next = if truncated(root) {
        let name = text_of(root, "NextRecordName")
            .ok_or("the list is truncated but names no NextRecordName")?;
        let rtype = text_of(root, "NextRecordType").unwrap_or_default();
        Some((decode(&name).to_ascii_lowercase(), rtype))
    } else {
        None
    };
    Ok(SetPage { sets, next })
}

/// That a change was accepted: a `ChangeResourceRecordSetsResponse` (its status, `PENDING`
/// or `INSYNC`).
pub fn parse_change(body: &[u8]) -> Result<String, String> {
    let text = as_text(body)?;
    let doc = Document::parse(text).map_err(|e| not_xml(text, &e))?;
    let root = expect_root(&doc, "ChangeResourceRecordSetsResponse")?;
    child(root, "ChangeInfo")
        .and_then(|c| text_of(c, "Status"))
        .ok_or_else(|| "the answer has no ChangeInfo/Status".into())
}

/// The code and message of an error answer: `<ErrorResponse><Error>` (AWS), the same with an
/// `<Errors>` level between (moto's authentication errors), or `<InvalidChangeBatch>` with
/// its `<Messages>`. `None` when the body is none of these (HTML, garbage, empty).
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = Document::parse(text).ok()?;
    let root = doc.root_element();
    if is(&root, "InvalidChangeBatch") {
        let messages: Vec<String> = root
            .descendants()
            .filter(|n| is(n, "Message"))
            .filter_map(|n| n.text().map(|t| t.trim().to_string()))
            .collect();
        return Some(ErrorBody {
            code: "InvalidChangeBatch".into(),
            message: messages.join("; "),
        });
    }
    if !is(&root, "ErrorResponse") && !is(&root, "Response") {
        return None;
    }
    let error = root.descendants().find(|n| is(n, "Error"))?;
    Some(ErrorBody {
        code: text_of(error, "Code")?.trim().to_string(),
        message: text_of(error, "Message")
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

/// A `ChangeResourceRecordSetsRequest` of one change: `action` (`UPSERT`, `DELETE`) of the
/// plain record set `name` `rtype` with `ttl` and `values`.
pub fn change_batch(action: &str, name: &str, rtype: &str, ttl: u32, values: &[String]) -> String {
    let records: String = values
        .iter()
        .map(|v| {
            format!(
                "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                escape(v)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ChangeResourceRecordSetsRequest xmlns=\"{NS}\"><ChangeBatch><Changes><Change>\
         <Action>{}</Action><ResourceRecordSet><Name>{}</Name><Type>{}</Type><TTL>{ttl}</TTL>\
         <ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change></Changes>\
         </ChangeBatch></ChangeResourceRecordSetsRequest>",
        escape(action),
        escape(name),
        escape(rtype)
    )
}

/// `text` safe inside an XML element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A zone name for comparing: decoded, lower case, with the final dot.
fn zone_name(raw: &str) -> String {
    dns_names::zone_key(&decode(raw))
}

fn as_text(body: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".to_string())
}

/// A parse error with the start of what was answered, so HTML or garbage shows as such.
fn not_xml(text: &str, error: &roxmltree::Error) -> String {
    let start: String = text.trim().chars().take(80).collect();
    format!("the answer is not XML ({error}); it starts '{start}'")
}

fn expect_root<'a>(doc: &'a Document, name: &str) -> Result<Node<'a, 'a>, String> {
    let root = doc.root_element();
    if is(&root, name) {
        Ok(root)
    } else {
        Err(format!(
            "expected <{name}>, the answer is <{}>",
            root.tag_name().name()
        ))
    }
}

fn is(node: &Node, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Option<Node<'a, 'a>> {
    node.children().find(|n| is(n, name))
}

fn text_of(node: Node, name: &str) -> Option<String> {
    child(node, name).map(|n| n.text().unwrap_or_default().to_string())
}

/// A child's text, or an error saying which element of `what` is missing.
fn required(node: Node, name: &str, what: &str) -> Result<String, String> {
    text_of(node, name).ok_or_else(|| format!("{what} has no <{name}>"))
}

fn truncated(root: Node) -> bool {
    text_of(root, "IsTruncated").is_some_and(|t| t.trim() == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers captured from moto 5.2.5 (`src/testdata/route53/`).
    fn captured(name: &str) -> &'static [u8] {
        match name {
            "list_zones" => include_bytes!("../testdata/route53/list_zones.xml"),
            "list_zones_page1" => include_bytes!("../testdata/route53/list_zones_page1.xml"),
            "rrsets_exact" => include_bytes!("../testdata/route53/rrsets_exact.xml"),
            "rrsets_next_set" => include_bytes!("../testdata/route53/rrsets_next_set.xml"),
            "rrsets_of_name" => include_bytes!("../testdata/route53/rrsets_of_name.xml"),
            "rrsets_wildcard" => include_bytes!("../testdata/route53/rrsets_wildcard.xml"),
            "change" => include_bytes!("../testdata/route53/change.xml"),
            "error_no_such_zone" => include_bytes!("../testdata/route53/error_no_such_zone.xml"),
            "error_signature" => include_bytes!("../testdata/route53/error_signature.xml"),
            "error_unknown_key" => include_bytes!("../testdata/route53/error_unknown_key.xml"),
            "error_invalid_input" => {
                include_bytes!("../testdata/route53/error_invalid_input.xml")
            }
            "error_500" => include_bytes!("../testdata/route53/error_500.html"),
            other => panic!("no capture {other}"),
        }
    }

    #[test]
    fn hosted_zones_private_ones_included_and_pages() {
        let page = parse_zones(captured("list_zones")).unwrap();
        assert_eq!(page.next_marker, None);
        assert_eq!(
            page.zones,
            [
                HostedZone {
                    id: "LP5R4YIKEXZS18KLBNH2YK".into(),
                    name: "tidemark.test.".into(),
                    private: false
                },
                HostedZone {
                    id: "HMBH7WN0GRNZCNJJA3S8H4".into(),
                    name: "sub.tidemark.test.".into(),
                    private: true
                },
            ]
        );
        let first = parse_zones(captured("list_zones_page1")).unwrap();
        assert_eq!(first.zones.len(), 1);
        assert!(first.next_marker.unwrap().ends_with("=="));
    }

    #[test]
    fn record_sets_with_values_ttl_and_the_next_set() {
        let page = parse_sets(captured("rrsets_exact")).unwrap();
        assert_eq!(
            page.sets,
            [RecordSet {
                name: "db.tidemark.test.".into(),
                rtype: "A".into(),
                ttl: Some(60),
                values: vec!["192.0.2.7".into(), "192.0.2.8".into()],
                alias: None,
                set_identifier: None,
            }]
        );
        assert_eq!(page.next, Some(("db.tidemark.test.".into(), "A".into())));
        // Asked for AAAA, Route 53 answers the set that follows: a CNAME.
        let page = parse_sets(captured("rrsets_next_set")).unwrap();
        assert_eq!(page.sets[0].rtype, "CNAME");
        assert_eq!(page.next, None);
        let page = parse_sets(captured("rrsets_of_name")).unwrap();
        assert_eq!(page.sets.len(), 3);
        let page = parse_sets(captured("rrsets_wildcard")).unwrap();
        assert_eq!(page.sets[0].name, "*.tidemark.test.");
    }

    #[test]
    fn aws_escapes_and_alias_sets_are_read() {
        let body = br#"<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets><ResourceRecordSet><Name>\052.Tidemark.test.</Name><Type>A</Type><AliasTarget><HostedZoneId>Z2</HostedZoneId><DNSName>lb.example.com.</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet><ResourceRecordSet><Name>w.tidemark.test.</Name><Type>A</Type><SetIdentifier>blue</SetIdentifier><Weight>10</Weight><TTL>5</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>2</MaxItems></ListResourceRecordSetsResponse>"#;
        let page = parse_sets(body).unwrap();
        assert_eq!(page.sets[0].name, "*.tidemark.test.");
        assert_eq!(page.sets[0].alias.as_deref(), Some("lb.example.com."));
        assert_eq!(page.sets[0].ttl, None);
        assert_eq!(page.sets[1].set_identifier.as_deref(), Some("blue"));
    }

    #[test]
    fn errors_of_every_shape() {
        let e = parse_error(captured("error_no_such_zone")).unwrap();
        assert_eq!(e.code, "NoSuchHostedZone");
        assert!(e.message.contains("NOPE"));
        assert_eq!(
            parse_error(captured("error_signature")).unwrap().code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            parse_error(captured("error_unknown_key")).unwrap().code,
            "InvalidClientTokenId"
        );
        assert_eq!(
            parse_error(captured("error_invalid_input")).unwrap().code,
            "InvalidInput"
        );
        // AWS's own shape for a refused batch.
        let batch = br#"<?xml version="1.0"?><InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>RRSet of type CNAME with DNS name db.example.com. is not permitted because a conflicting RRSet of type A with the same DNS name already exists in zone example.com.</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>"#;
        let e = parse_error(batch).unwrap();
        assert_eq!(e.code, "InvalidChangeBatch");
        assert!(e.message.contains("conflicting RRSet"));
        let throttled = br#"<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(parse_error(throttled).unwrap().code, "Throttling");
        assert_eq!(parse_error(captured("error_500")), None);
        assert_eq!(parse_error(b""), None);
    }

    #[test]
    fn garbage_is_an_error_saying_what_came_instead() {
        let e = parse_zones(captured("error_500")).unwrap_err();
        assert!(
            e.contains("not XML") && e.contains("<!doctype html>"),
            "{e}"
        );
        let e = parse_sets(b"<html><body>proxy</body></html>").unwrap_err();
        assert!(e.contains("expected <ListResourceRecordSetsResponse>") && e.contains("<html>"));
        assert!(parse_sets(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        let e = parse_zones(b"<ListHostedZonesResponse><HostedZones><HostedZone><Name>x.</Name></HostedZone></HostedZones></ListHostedZonesResponse>").unwrap_err();
        assert!(e.contains("<Id>"), "{e}");
        let e = parse_sets(b"<ListResourceRecordSetsResponse><ResourceRecordSets><ResourceRecordSet><Name>x.</Name><Type>A</Type><TTL>-1</TTL></ResourceRecordSet></ResourceRecordSets></ListResourceRecordSetsResponse>").unwrap_err();
        assert!(e.contains("TTL '-1'"), "{e}");
        assert_eq!(parse_change(captured("change")).unwrap(), "INSYNC");
    }

    #[test]
    fn a_change_batch_is_escaped_and_parses_back() {
        let body = change_batch("UPSERT", "db.tidemark.test.", "A", 60, &["1.2.3.4".into()]);
        let doc = Document::parse(&body).unwrap();
        let set = doc
            .descendants()
            .find(|n| is(n, "ResourceRecordSet"))
            .unwrap();
        assert_eq!(text_of(set, "Name").unwrap(), "db.tidemark.test.");
        assert_eq!(text_of(set, "TTL").unwrap(), "60");
        assert_eq!(escape("a<&>'\""), "a&lt;&amp;&gt;&apos;&quot;");
    }
}
