//! Signed requests to Route 53's REST XML API (`/2013-04-01/…`) through the [`Io`] seam:
//! hosted zones (all pages), record sets from a name on, one change. Busy answers are sent
//! again a few times at once; every other error is the contract's from [`errors`].
//!
//! Every request signs `x-amz-content-sha256`. Route 53 does not need it, but moto 5.2.5
//! checks a GET's signature against a hash of its query parameters (or, with none, of the
//! request's headers) as if they were the body, unless the request carries that header.

use tidemark_sdk::{AdapterError, AdapterResult};

use super::errors;
use super::settings::Settings;
use super::xml::{self, HostedZone, SetPage};
use crate::sigv4::{self, Options, Request, Scope};
use tidemark_sdk::http::Io;

/// The API version every path starts with.
const VERSION: &str = "/2013-04-01";
/// The service name requests are signed for.
const SERVICE: &str = "route53";
/// How many times a request is sent while Route 53 throttles it or fails.
const ATTEMPTS: u32 = 4;
/// More pages than this of one listing is a server that never ends its list.
const MAX_PAGES: usize = 1000;

/// The Route 53 API of one endpoint.
pub struct Api<'a> {
    settings: Settings,
    io: &'a dyn Io,
}

impl<'a> Api<'a> {
    /// An API on `settings` through `io`; nothing is sent yet.
    pub fn new(settings: Settings, io: &'a dyn Io) -> Self {
        Api { settings, io }
    }

    /// Whose zones these are, for messages: `Route 53 at https://route53.amazonaws.com`.
    pub fn holder(&self) -> String {
        format!("Route 53 at {}", self.settings.base)
    }

    /// Every hosted zone of the account, private ones included, all pages.
    pub fn zones(&self) -> AdapterResult<Vec<HostedZone>> {
        let what = format!("the hosted zones of {}", self.holder());
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("maxitems".to_string(), "100".to_string())];
            if let Some(m) = &marker {
                query.push(("marker".into(), m.clone()));
            }
            let path = format!("{VERSION}/hostedzone");
            let body = self.send("GET", &path, &query, b"", &what)?;
            let page = xml::parse_zones(&body).map_err(|e| unreadable(&what, &e))?;
            zones.extend(page.zones);
            match page.next_marker {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                Some(_) => return Err(unreadable(&what, "the same NextMarker twice")),
                None => return Ok(zones),
            }
        }
        Err(unreadable(&what, "more than 1000 pages"))
    }

    /// Up to `max` record sets of `zone` from `name` (and `rtype`, when given) on, in
    /// Route 53's order: the first is the set asked for only if it exists.
    pub fn sets(
        &self,
        zone: &HostedZone,
        name: &str,
        rtype: Option<&str>,
        max: u32,
    ) -> AdapterResult<SetPage> {
        let mut query = vec![
            ("name".to_string(), name.to_string()),
            ("maxitems".to_string(), max.to_string()),
        ];
        if let Some(t) = rtype {
            query.push(("type".into(), t.into()));
        }
        let what = self.zone_what(zone);
        let path = format!("{VERSION}/hostedzone/{}/rrset", zone.id);
        let body = self.send("GET", &path, &query, b"", &what)?;
        xml::parse_sets(&body).map_err(|e| unreadable(&format!("the records of {what}"), &e))
    }

    /// Applies one change (`UPSERT`, `DELETE`) of the plain set `name` `rtype` to `zone`.
    pub fn change(
        &self,
        zone: &HostedZone,
        action: &str,
        name: &str,
        rtype: &str,
        ttl: u32,
        values: &[String],
    ) -> AdapterResult<()> {
        let what = self.zone_what(zone);
        let path = format!("{VERSION}/hostedzone/{}/rrset/", zone.id);
        let batch = xml::change_batch(action, name, rtype, ttl, values);
        let body = self.send("POST", &path, &[], batch.as_bytes(), &what)?;
        xml::parse_change(&body)
            .map(|_| ())
            .map_err(|e| unreadable(&format!("the answer to a change of {what}"), &e))
    }

    fn zone_what(&self, zone: &HostedZone) -> String {
        format!("zone {} ({}) of {}", zone.name, zone.id, self.holder())
    }

    /// One signed request; the body of a 2xx answer, or the error its answer means.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        what: &str,
    ) -> AdapterResult<Vec<u8>> {
        let secrets = self.settings.secrets();
        let scrub = |e| tidemark_sdk::scrubbed(e, &secrets);
        let query_string = sigv4::canonical_query(query);
        let url = if query_string.is_empty() {
            format!("{}{path}", self.settings.base)
        } else {
            format!("{}{path}?{query_string}", self.settings.base)
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if !body.is_empty() {
            headers.push(("content-type".into(), "text/xml".into()));
        }
        let scope = Scope {
            region: &self.settings.region,
            service: SERVICE,
        };
        let mut attempt = 0;
        loop {
            let request = Request {
                method,
                host: &self.settings.host,
                path,
                query,
                headers: &headers,
                body,
            };
            let signed = sigv4::sign(
                &request,
                &self.settings.credentials,
                scope,
                &sigv4::amz_date(self.io.now_ms()),
                Options {
                    content_sha256: true,
                },
            );
            let all: Vec<(&str, &str)> = headers
                .iter()
                .chain(&signed.headers)
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let answer = self.io.send(method, &url, &all, body).map_err(scrub)?;
            attempt += 1;
            if errors::retried(answer.status, &answer.body) && attempt < ATTEMPTS {
                self.io.sleep_ms(100 << (attempt - 1));
                continue;
            }
            if (200..300).contains(&answer.status) {
                return Ok(answer.body);
            }
            let request = format!("{method} {url}");
            return Err(scrub(errors::from_answer(
                answer.status,
                &answer.body,
                what,
                &request,
            )));
        }
    }
}

/// A 2xx answer that could not be read: `internal`, naming what was being read.
fn unreadable(what: &str, why: &str) -> AdapterError {
    AdapterError::Internal(format!("reading {what}: {why}"))
}
