//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of this API, generated from the code.
//! Each handler's `#[utoipa::path]` attribute and the real types it sends and receives are
//! registered together with its route (utoipa-axum's `routes!`), so the router and the
//! document come from one list; [`complete`] then adds what the layers wrapped around every
//! route answer (bearer authentication, the body limit, internal failures).

use axum::Extension;
use axum::body::Bytes;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem, Paths};
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

use super::auth::{Role, required_role};
use super::error::ErrorBody;
use crate::engine::JobRequest;
use crate::model::{BootDevice, RecordKind};

/// Name of the security scheme every operation requires.
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tidemark admin API",
        description = "Protects and moves virtual machines, including their physically mapped \
                       array LUNs. Every request needs `Authorization: Bearer <token>` \
                       (`tidemark token create`); `viewer` reads, `operator` also runs jobs, \
                       `admin` also manages endpoints, adapters and tokens. Every error is \
                       `{error, message, details}`."
    ),
    security(("bearer" = [])),
    // Enums used as path parameters are referenced, not inlined: they must be listed here.
    components(schemas(ErrorBody, RecordKind, BootDevice))
)]
struct Base;

/// The document before any route is registered: title, version, the error schema and the
/// requirement of a bearer token on every operation.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// The document as served, once every route is registered: adds the bearer scheme and, to
/// every operation, the answers of the layers around it: 401 (no or bad token), 403 (when
/// the route needs more than `viewer`, decided by the guard's own [`required_role`]), 413
/// (when it takes a body it does not stream) and 500.
pub fn complete(mut doc: OpenApi) -> OpenApi {
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            let mut layered = vec![("401", "No bearer token, or not a valid one")];
            if required_role(&method, path) > Role::Viewer {
                layered.push(("403", "The token's role may not do this"));
            }
            let streamed = operation
                .extensions
                .as_ref()
                .is_some_and(|e| e.contains_key(STREAMED_BODY));
            if operation.request_body.is_some() && !streamed {
                layered.push(("413", "The body is larger than the limit"));
            }
            layered.push(("500", "The host itself failed"));
            for (status, description) in layered {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
    close_variants::<JobRequest>(&mut doc);
    doc
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::PATCH, &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

/// The extension marking an operation whose handler streams its body itself and is not
/// held to `body_limit` (so [`complete`] gives it no 413).
const STREAMED_BODY: &str = "x-streamed-body";

/// Marks every operation of `paths` as streaming its body (see [`STREAMED_BODY`]).
pub fn mark_streamed_bodies(paths: &mut Paths) {
    for item in paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .insert(STREAMED_BODY.to_string(), true.into());
        }
    }
}

/// Marks every variant of a `#[serde(tag = .., deny_unknown_fields)]` enum as closed
/// (`additionalProperties: false`), as serde treats it: utoipa carries the container's
/// `deny_unknown_fields` to structs but not to the variants of an internally tagged enum.
fn close_variants<T: utoipa::ToSchema>(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(&*T::name()) {
        for variant in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = variant {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// A response whose body is the error shape.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let schema = Ref::from_schema_name(<ErrorBody as utoipa::ToSchema>::name());
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(schema)))
            .build(),
    )
}

/// The serialized document, made once when the router is built and shared by requests.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    /// Serializes the document (it never changes while the server runs).
    pub fn new(doc: &OpenApi) -> Self {
        // Plain maps, strings and numbers: serializing them cannot fail.
        Self(Bytes::from(
            serde_json::to_vec(doc).expect("an OpenAPI document serializes"),
        ))
    }
}

/// `GET /v1/openapi.json`: this document.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "get_openapi_document", responses(
    (status = 200, description = "The OpenAPI document of this API", body = Object),
))]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}
