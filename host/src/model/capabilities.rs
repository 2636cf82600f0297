//! What an adapter may reach outside its sandbox: what it asks for (its manifest), what the
//! operator grants an endpoint, and what it gets — only what is both asked for and granted.
//!
//! Zed's extension capabilities are the model: a grant the adapter did not ask for is
//! reported, never silently given; a request nobody granted is reported too, so an operator
//! sees at `endpoint add` why a call would be denied.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A network destination. In a request, `host` or `port` may be left open (`*`); in a
/// grant the host is always named and an HTTP grant may leave the port open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Lower-case DNS name, IPv4 address or IPv6 address (without brackets); `None` is any.
    pub host: Option<String>,
    /// `None` is any port.
    pub port: Option<u16>,
}

impl Target {
    /// Parses `HOST[:PORT]`, `[IPV6]:PORT` or (where `wildcards`) `*` and `*:PORT`,
    /// `HOST:*`. `port_required` refuses a target without a port (TCP grants).
    pub fn parse(text: &str, wildcards: bool, port_required: bool) -> Result<Target, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty address".into());
        }
        let (host, port) = split_host_port(text)?;
        let host = match host {
            "*" if wildcards => None,
            "*" => return Err(format!("{text}: a grant names its host; '*' is not one")),
            other => Some(check_host(other).map_err(|e| format!("{text}: {e}"))?),
        };
        let port =
            match port {
                None if port_required => {
                    return Err(format!("{text}: give a port (HOST:PORT)"));
                }
                None => None,
                Some("*") if wildcards => None,
                Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("{text}: port {p:?} is not a number from 1 to 65535")
                })?),
            };
        Ok(Target { host, port })
    }

    /// Whether a concrete `host:port` is inside this target.
    pub fn covers(&self, host: &str, port: u16) -> bool {
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host.trim_matches(['[', ']'])))
            && self.port.is_none_or(|p| p == port)
    }

    /// What both allow, if anything: the narrower host and the narrower port.
    fn intersect(&self, other: &Target) -> Option<Target> {
        let host = match (&self.host, &other.host) {
            (Some(a), Some(b)) if a == b => Some(a.clone()),
            (Some(_), Some(_)) => return None,
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        let port = match (self.port, other.port) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(_), Some(_)) => return None,
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        Some(Target { host, port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.as_deref() {
            None => f.write_str("*")?,
            Some(h) if h.contains(':') => write!(f, "[{h}]")?,
            Some(h) => f.write_str(h)?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text}: an IPv6 address in brackets lacks its ']'"))?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("{text}: expected ':PORT' after ']'")),
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, Some(port))),
        Some(_) => Err(format!(
            "{text}: write an IPv6 address in brackets, [ADDR]:PORT"
        )),
        None => Ok((text, None)),
    }
}

/// A DNS name or an IP address, lower-cased.
fn check_host(host: &str) -> Result<String, String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host.to_ascii_lowercase());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!(
            "{host:?} is not a host name or IP address (letters, digits, '-' and '.')"
        ))
    }
}

/// What an adapter asks for, from the manifest inside its `.wasm`. An adapter without one
/// asks for its data directory only (every adapter before contract 0.3.0 needs one).
/// Serialised as operators read it (see [`Requested::describe`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// HTTP destinations (`*` is any host the operator grants).
    pub http: Vec<Target>,
    /// TCP destinations.
    pub tcp: Vec<Target>,
    /// A private data directory.
    pub data_dir: bool,
    /// Names of the secrets it reads through `host.secret`.
    pub secrets: Vec<String>,
}

impl Serialize for Requested {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.describe().serialize(serializer)
    }
}

/// The JSON of the manifest section, as adapter authors write it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ManifestText {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
    #[serde(default)]
    data_dir: bool,
    #[serde(default)]
    secrets: Vec<String>,
}

/// The name of the custom section an adapter's manifest is carried in.
pub const MANIFEST_SECTION: &str = "tidemark:manifest";

impl Requested {
    /// What an adapter without a manifest asks for.
    pub fn without_manifest() -> Requested {
        Requested {
            data_dir: true,
            ..Requested::default()
        }
    }

    /// Parses the manifest's JSON, e.g.
    /// `{"http": ["*"], "tcp": ["*:10809"], "data-dir": true, "secrets": ["password"]}`.
    pub fn from_manifest(bytes: &[u8]) -> Result<Requested, String> {
        let text: ManifestText = serde_json::from_slice(bytes)
            .map_err(|e| format!("its {MANIFEST_SECTION} section is not a manifest: {e}"))?;
        let targets = |list: &[String], kind: &str| {
            list.iter()
                .map(|t| Target::parse(t, true, false).map_err(|e| format!("{kind} request {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        for name in &text.secrets {
            check_secret_name(name)?;
        }
        Ok(Requested {
            http: targets(&text.http, "http")?,
            tcp: targets(&text.tcp, "tcp")?,
            data_dir: text.data_dir,
            secrets: text.secrets,
        })
    }

    /// The request as operators read it: `http=*`, `tcp=*:10809`, `data-dir`, `secret=NAME`.
    pub fn describe(&self) -> Vec<String> {
        describe(
            &self.http,
            &self.tcp,
            self.data_dir.then(|| data_dir_text(None)),
            &self.secrets,
        )
    }
}

/// Capabilities in `--grant` syntax, secrets as `secret=NAME`: how requests, grants and
/// what the sandbox allows are all shown.
fn describe<S: fmt::Display>(
    http: &[Target],
    tcp: &[Target],
    data_dir: Option<String>,
    secrets: impl IntoIterator<Item = S>,
) -> Vec<String> {
    let mut out: Vec<String> = http.iter().map(|t| format!("http={t}")).collect();
    out.extend(tcp.iter().map(|t| format!("tcp={t}")));
    out.extend(data_dir);
    out.extend(secrets.into_iter().map(|s| format!("secret={s}")));
    out
}

/// `data-dir`, or `data-dir=PATH` for a directory other than the endpoint's own.
fn data_dir_text(at: Option<&str>) -> String {
    match at {
        Some(path) => format!("data-dir={path}"),
        None => "data-dir".into(),
    }
}

/// A `data-dir=PATH` grant's path: absolute, without `.`/`..` parts or control characters.
fn check_data_dir_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    let fine = path.starts_with('/')
        && !trimmed.is_empty()
        && !path.chars().any(char::is_control)
        && !trimmed
            .split('/')
            .skip(1)
            .any(|part| matches!(part, "" | "." | ".."));
    if fine {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "grant data-dir={path:?}: give an absolute directory path without '.' or '..' parts"
        ))
    }
}

/// [`check_secret_name`]'s rule as a regular expression, for the API document (a test
/// holds the two together).
pub const SECRET_NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// A secret's name: what `host.secret` is asked for and `--secret NAME=` sets.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "secret name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// What the operator grants one endpoint. Stored and shown in `--grant` syntax, a list
/// like `["tcp=127.0.0.1:10809", "data-dir"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// HTTP destinations (a port left open is any port of that host).
    pub http: Vec<Target>,
    /// TCP destinations (always with a port).
    pub tcp: Vec<Target>,
    /// A data directory, preopened as `/data`: its private one under the data directory,
    /// or the one at `data_dir_at`.
    pub data_dir: bool,
    /// `data-dir=PATH`: a directory the adapter shares with the system behind it (qsd's
    /// image directory, where the adapter must unlink what qsd created).
    pub data_dir_at: Option<String>,
}

impl Serialize for Grants {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.describe().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Grants {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        Grants::parse(&texts).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Grants {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^(data-dir(=/.*)?|http=.+|tcp=.+:[0-9]+)$"))
                    .description(Some(
                        "http=HOST[:PORT], tcp=HOST:PORT, data-dir or data-dir=PATH",
                    )),
            )
            .into()
    }
}

impl utoipa::ToSchema for Grants {}

impl Grants {
    /// Parses grants as `--grant` takes them: `http=HOST[:PORT]`, `tcp=HOST:PORT`, `data-dir`.
    pub fn parse(texts: &[String]) -> Result<Grants, String> {
        let mut grants = Grants::default();
        for text in texts {
            let text = text.trim();
            match text.split_once('=') {
                None if text == "data-dir" => grants.data_dir = true,
                Some(("data-dir", path)) => {
                    grants.data_dir = true;
                    grants.data_dir_at = Some(check_data_dir_path(path)?);
                }
                Some(("http", target)) => grants.http.push(
                    Target::parse(target, false, false).map_err(|e| format!("grant http={e}"))?,
                ),
                Some(("tcp", target)) => grants.tcp.push(
                    Target::parse(target, false, true).map_err(|e| format!("grant tcp={e}"))?,
                ),
                _ => {
                    return Err(format!(
                        "grant {text:?}: expected http=HOST[:PORT], tcp=HOST:PORT, data-dir or data-dir=PATH"
                    ));
                }
            }
        }
        grants.http.sort();
        grants.http.dedup();
        grants.tcp.sort();
        grants.tcp.dedup();
        Ok(grants)
    }

    /// The grants in `--grant` syntax.
    pub fn describe(&self) -> Vec<String> {
        describe(
            &self.http,
            &self.tcp,
            self.data_dir
                .then(|| data_dir_text(self.data_dir_at.as_deref())),
            Vec::<String>::new(),
        )
    }
}

/// What one endpoint's sandbox actually allows: requested ∩ granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// HTTP destinations a request may go to.
    pub http: Vec<Target>,
    /// TCP destinations a connect may go to.
    pub tcp: Vec<Target>,
    /// Whether `/data` is preopened.
    pub data_dir: bool,
    /// Preopened from this directory instead of the endpoint's private one.
    pub data_dir_at: Option<String>,
    /// Names of the secrets `host.secret` answers.
    pub secrets: BTreeSet<String>,
}

/// Both sides of a mismatch between a request and the grants, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantReport {
    /// What the endpoint's sandbox allows, in `--grant` syntax (and `secret=NAME`).
    pub effective: Vec<String>,
    /// Asked for by the adapter but not granted (its calls needing them will be denied).
    pub not_granted: Vec<String>,
    /// Granted but not asked for by the adapter (not given to it).
    pub not_requested: Vec<String>,
}

/// Intersects `grants` (and the names of the endpoint's secrets) with what the adapter
/// requests.
pub fn effective(requested: &Requested, grants: &Grants, secrets: &[&str]) -> Effective {
    let narrow = |asked: &[Target], given: &[Target]| {
        let mut out: Vec<Target> = given
            .iter()
            .flat_map(|g| asked.iter().filter_map(|r| g.intersect(r)))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    Effective {
        http: narrow(&requested.http, &grants.http),
        tcp: narrow(&requested.tcp, &grants.tcp),
        data_dir: requested.data_dir && grants.data_dir,
        data_dir_at: (requested.data_dir && grants.data_dir)
            .then(|| grants.data_dir_at.clone())
            .flatten(),
        secrets: secrets
            .iter()
            .filter(|s| requested.secrets.iter().any(|r| r == *s))
            .map(|s| s.to_string())
            .collect(),
    }
}

/// What is given, what is asked for and missing, what is granted and unused.
pub fn report(requested: &Requested, grants: &Grants, secrets: &[&str]) -> GrantReport {
    let given = effective(requested, grants, secrets);
    let meets = |t: &Target, others: &[Target]| others.iter().any(|o| t.intersect(o).is_some());
    let mut not_granted = Vec::new();
    let mut not_requested = Vec::new();
    for (kind, asked, granted) in [
        ("http", &requested.http, &grants.http),
        ("tcp", &requested.tcp, &grants.tcp),
    ] {
        let unmet = |from: &[Target], against: &[Target]| {
            from.iter()
                .filter(|t| !meets(t, against))
                .map(|t| format!("{kind}={t}"))
                .collect::<Vec<_>>()
        };
        not_granted.extend(unmet(asked, granted));
        not_requested.extend(unmet(granted, asked));
    }
    if requested.data_dir != grants.data_dir {
        let side = if requested.data_dir {
            &mut not_granted
        } else {
            &mut not_requested
        };
        side.push(data_dir_text(grants.data_dir_at.as_deref()));
    }
    not_granted.extend(
        requested
            .secrets
            .iter()
            .filter(|name| !secrets.contains(&name.as_str()))
            .map(|name| format!("secret={name}")),
    );
    not_requested.extend(
        secrets
            .iter()
            .filter(|name| !given.secrets.contains(**name))
            .map(|name| format!("secret={name}")),
    );
    GrantReport {
        effective: describe(
            &given.http,
            &given.tcp,
            given
                .data_dir
                .then(|| data_dir_text(given.data_dir_at.as_deref())),
            &given.secrets,
        ),
        not_granted,
        not_requested,
    }
}

/// What the sandbox refused an adapter, as logged, counted and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `http`, `tcp` or `udp`.
    pub kind: &'static str,
    /// The address it tried, e.g. `127.0.0.1:8080`.
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Grants {
        Grants::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn grants_parse_and_print_in_their_own_syntax() {
        let g = grants(&[
            "tcp=127.0.0.1:10809",
            "http=API.example.com",
            "http=[::1]:8080",
            "data-dir",
        ]);
        assert_eq!(
            g.describe(),
            [
                "http=[::1]:8080",
                "http=api.example.com",
                "tcp=127.0.0.1:10809",
                "data-dir"
            ]
        );
        for (bad, says) in [
            ("tcp=127.0.0.1", "give a port"),
            ("tcp=*:80", "'*' is not one"),
            ("http=exa mple.com", "not a host name"),
            ("tcp=h:0", "not a number from 1 to 65535"),
            ("tcp=h:99999", "not a number"),
            ("udp=h:53", "expected http=HOST[:PORT]"),
            ("tcp=::1:80", "IPv6 address in brackets"),
            ("data-dirs", "expected"),
        ] {
            let err = Grants::parse(&[bad.to_string()]).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn effective_is_the_intersection_and_the_report_names_both_sides() {
        let requested = Requested::from_manifest(
            br#"{"http": ["*:443"], "tcp": ["127.0.0.1:*"], "data-dir": true, "secrets": ["password"]}"#,
        )
        .unwrap();
        let g = grants(&[
            "http=api.example.com",
            "tcp=127.0.0.1:10809",
            "tcp=10.0.0.1:22",
        ]);
        let e = effective(&requested, &g, &["password", "other"]);
        assert_eq!(e.http[0].to_string(), "api.example.com:443");
        assert_eq!(e.tcp.len(), 1);
        assert!(e.tcp[0].covers("127.0.0.1", 10809));
        assert!(!e.tcp[0].covers("127.0.0.1", 10810));
        assert!(!e.data_dir);
        assert_eq!(e.secrets.iter().collect::<Vec<_>>(), ["password"]);
        let r = report(&requested, &g, &["password", "other"]);
        assert_eq!(r.not_granted, ["data-dir"]);
        assert_eq!(r.not_requested, ["tcp=10.0.0.1:22", "secret=other"]);
        assert!(r.effective.contains(&"secret=password".to_string()));
    }

    #[test]
    fn an_adapter_without_a_manifest_gets_its_data_dir_and_nothing_else() {
        let requested = Requested::without_manifest();
        let g = grants(&["data-dir", "tcp=127.0.0.1:1"]);
        let e = effective(&requested, &g, &["s"]);
        assert!(e.data_dir && e.tcp.is_empty() && e.secrets.is_empty());
        let r = report(&requested, &g, &["s"]);
        assert_eq!(r.not_requested, ["tcp=127.0.0.1:1", "secret=s"]);
    }

    #[test]
    fn the_documented_secret_name_pattern_is_the_checked_rule() {
        let pattern = regex::Regex::new(SECRET_NAME_PATTERN).unwrap();
        let long = "x".repeat(64);
        let too_long = "x".repeat(65);
        for name in [
            "a",
            "db.password",
            "A-Z_09",
            &long,
            "",
            "a b",
            "ä",
            &too_long,
            "a/b",
            "a\n",
        ] {
            assert_eq!(
                check_secret_name(name).is_ok(),
                pattern.is_match(name),
                "{name:?} against {SECRET_NAME_PATTERN}"
            );
        }
    }

    #[test]
    fn a_data_dir_grant_may_name_a_shared_directory() {
        let g = grants(&["data-dir=/var/lib/qsd/images/", "tcp=127.0.0.1:1"]);
        assert_eq!(g.data_dir_at.as_deref(), Some("/var/lib/qsd/images"));
        assert_eq!(
            g.describe(),
            ["tcp=127.0.0.1:1", "data-dir=/var/lib/qsd/images"]
        );
        let e = effective(&Requested::without_manifest(), &g, &[]);
        assert_eq!(e.data_dir_at.as_deref(), Some("/var/lib/qsd/images"));
        let r = report(&Requested::without_manifest(), &g, &[]);
        assert_eq!(r.effective, ["data-dir=/var/lib/qsd/images"]);
        // Not asked for: not given, and the report says which directory was unused.
        let e = effective(&Requested::default(), &g, &[]);
        assert!(!e.data_dir && e.data_dir_at.is_none());
        for bad in [
            "data-dir=",
            "data-dir=relative",
            "data-dir=/a/../b",
            "data-dir=/a//b",
        ] {
            let err = Grants::parse(&[bad.to_string()]).unwrap_err();
            assert!(err.contains("absolute directory"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_manifests_are_refused_naming_what_is_wrong() {
        for (bad, says) in [
            (
                &br#"{"tcp": ["localhost"], "fs": true}"#[..],
                "unknown field `fs`",
            ),
            (br#"{"http": ["a b"]}"#, "http request"),
            (br#"{"secrets": ["a/b"]}"#, "secret name"),
            (b"not json", "is not a manifest"),
        ] {
            let err = Requested::from_manifest(bad).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
