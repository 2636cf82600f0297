//! Keeps `/v1/openapi.json` complete: walks the route table of the router that serves
//! requests and fails if a route is missing from the document, or the document names an
//! operation the router does not serve.
//!
//! axum has no public way to list a router's routes; its `Debug` output is the route table
//! (`RouteId(n): MethodRouter { get: BoxedHandler, post: None, .. }` and
//! `Node { paths: {RouteId(n): "/path"} }`), which is what this reads. The walk refuses to
//! pass when it finds no routes, so a change of that format fails loudly, never silently.

use std::collections::{BTreeMap, BTreeSet};

/// Methods as axum's `MethodRouter` names its fields.
const METHODS: [&str; 9] = [
    "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
];

/// (path, method) pairs the router's table routes to a handler.
fn served(router_debug: &str) -> BTreeSet<(String, String)> {
    let table = router_debug
        .split_once("path_router: PathRouter { routes: {")
        .map(|(_, rest)| rest)
        .expect("axum's router Debug names its path_router");
    let (routes, rest) = table
        .split_once("node: Node { paths: {")
        .expect("axum's router Debug names the route node");
    // `RouteId(n): "/path", ...}`; paths hold `{param}`, so read entry by entry.
    let mut paths = BTreeMap::new();
    let mut rest = rest;
    while let Some(entry) = rest.strip_prefix("RouteId(") {
        let (id, after) = entry.split_once("): \"").expect("RouteId(n): \"path\"");
        let (path, after) = after.split_once('"').expect("a closed path");
        paths.insert(id.to_string(), path.to_string());
        match after.strip_prefix(", ") {
            Some(next) => rest = next,
            None => break,
        }
    }
    let mut out = BTreeSet::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, endpoint) = entry.split_once(')').expect("RouteId(n)");
        let path = paths
            .get(id)
            .unwrap_or_else(|| panic!("RouteId({id}) has no path in {paths:?}"));
        for method in METHODS {
            let field = format!(" {method}: ");
            let at = endpoint
                .find(&field)
                .unwrap_or_else(|| panic!("no `{method}` field in the route of {path}"));
            if !endpoint[at + field.len()..].starts_with("None") {
                out.insert((path.clone(), method.to_string()));
            }
        }
    }
    out
}

/// (path, method) pairs the document describes.
fn documented(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("get", &item.get),
            ("head", &item.head),
            ("delete", &item.delete),
            ("options", &item.options),
            ("patch", &item.patch),
            ("post", &item.post),
            ("put", &item.put),
            ("trace", &item.trace),
        ];
        for (method, operation) in operations {
            if operation.is_some() {
                out.insert((path.clone(), method.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let (router, doc) = super::registered().split_for_parts();
    let served = served(&format!("{router:?}"));
    let documented = documented(&doc);
    assert!(
        served.contains(&("/v1/openapi.json".to_string(), "get".to_string())) && served.len() >= 10,
        "the walk found too few routes ({served:?}): has axum's Debug format changed?"
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /v1/openapi.json (annotate the handler with #[utoipa::path] and \
         register it with routes!(..) in api::registered()): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented operations the router does not serve: {unserved:?}"
    );
}

#[test]
fn every_operation_answers_the_error_shape_for_its_layers() {
    let (_, doc) = super::registered().split_for_parts();
    let doc = super::openapi::complete(doc);
    let text = serde_json::to_value(&doc).expect("the document serializes");
    assert!(
        text["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    assert_eq!(
        text["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in text["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            for status in ["401", "500"] {
                assert_eq!(
                    operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} lacks its {status}"
                );
            }
        }
    }
    let start = &text["paths"]["/v1/jobs"]["post"];
    assert!(start["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(
        start["responses"]["403"].is_object(),
        "viewers may not start jobs"
    );
    assert!(start["responses"]["413"].is_object(), "the body is limited");
    assert!(text["paths"]["/v1/vms"]["get"]["responses"]["403"].is_null());
    // Unknown fields of a job request are refused (serde's deny_unknown_fields).
    for variant in text["components"]["schemas"]["JobRequest"]["oneOf"]
        .as_array()
        .expect("JobRequest is one of its kinds")
    {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
    }
    // Every schema a response or body names is in the components.
    let schemas = text["components"]["schemas"].as_object().expect("schemas");
    let all = text.to_string();
    for reference in all.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').expect("a closed $ref")];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
}

/// The first word of an operationId: what the operation does.
const VERBS: [&str; 26] = [
    "add",
    "cancel",
    "check",
    "collect",
    "create",
    "eject",
    "expire",
    "get",
    "insert",
    "list",
    "power",
    "read",
    "rebuild",
    "recover",
    "reconcile",
    "refresh",
    "remove",
    "resume",
    "set",
    "start",
    "stream",
    "test",
    "upgrade",
    "verify",
    "write",
    "delete",
];

#[test]
fn operation_ids_are_unique_and_say_what_they_do() {
    let (_, doc) = super::registered().split_for_parts();
    let text =
        serde_json::to_value(super::openapi::complete(doc)).expect("the document serializes");
    let mut seen = BTreeMap::new();
    for (path, item) in text["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let at = format!("{} {path}", method.to_uppercase());
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at} has no operationId"));
            let words: Vec<&str> = id.split('_').collect();
            assert!(
                words.len() >= 2
                    && VERBS.contains(&words[0])
                    && words.iter().all(|w| !w.is_empty()
                        && w.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())),
                "{at}: operationId '{id}' should be snake_case, a verb ({VERBS:?}) then what it \
                 acts on (set `operation_id` in its #[utoipa::path])"
            );
            if let Some(other) = seen.insert(id.to_string(), at.clone()) {
                panic!("operationId '{id}' names both {other} and {at}");
            }
        }
    }
}
