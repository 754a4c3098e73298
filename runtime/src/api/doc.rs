//! The OpenAPI document, generated: each handler's `#[utoipa::path]`
//! names its route, parameters, body and answers by their wire types
//! (`api::types`), and the router is built from those same attributes
//! (`utoipa_axum::routes!`), so a route cannot exist undocumented. This
//! module adds what is common to every route: the title, the bearer
//! scheme, and the error answer.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi};

use super::types::ErrorBody;

/// The document's fixed part; the router adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Junction admin API",
        version = "1",
        description = "Operate a Junction node: connectors, backends, syncs, jobs, events, records. \
            Every route except /health and the webhook intake (/hooks, signed by the backend \
            instead) needs `Authorization: Bearer <admin token>`. Every error, \
            whatever refused the request, is `{\"error\": {\"code\", \"message\"}}` with a stable \
            `code`. Lists are `{\"items\", \"next\"}`; pass `next` back as `cursor`. Times are Unix \
            milliseconds unless named RFC 3339."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "system", description = "health, status, reload, nodes, metrics"),
        (name = "connectors", description = "installed connector versions"),
        (name = "backends", description = "configured backends, their breakers, pauses and cursors"),
        (name = "sync", description = "starting imports and exports"),
        (name = "jobs", description = "the job queue: list, inspect, repair, pause channels"),
        (name = "events", description = "dead events"),
        (name = "records", description = "local records, bindings, a record's timeline"),
        (name = "hooks", description = "webhook intake: calls from backends, signed with their webhook secret"),
    )
)]
pub(super) struct Base;

/// The routes that need no token (the rest need the bearer token).
pub(super) const OPEN: &[&str] = &["/health", "/hooks/{backend}/{name}"];

/// Every operation: the bearer token (or none, for the open routes) and
/// the error shape as the answer to anything not listed.
pub(super) struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "the admin token (`admin_token` or `admin_token_file` of the service's config)",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN.contains(&path.as_str());
            for op in operations(item) {
                op.security = Some(if open {
                    Vec::new()
                } else {
                    vec![SecurityRequirement::new("bearer", Vec::<String>::new())]
                });
                let error = ResponseBuilder::new()
                    .description(
                        "an error: `code` names it (`unauthorized`, `not_found`, `bad_request`, \
                         `bad_query`, `bad_path`, `invalid_body`, `malformed_json`, \
                         `payload_too_large`, …), `message` says what to do",
                    )
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build();
                op.responses
                    .responses
                    .entry("default".to_string())
                    .or_insert(error.into());
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}
