//! The OpenAPI 3.1 documents of both listeners, served at `GET /api/v1/openapi.json`
//! (customer) and `GET /api/v1/operator/openapi.json` (management).
//!
//! Operations and schemas come from the handlers' `#[utoipa::path]` and the types'
//! `ToSchema`; who may call each route comes from the route tables: [`document`] walks
//! a listener's tables and adds to each operation its access (`x-kura-access`: `open`,
//! `agent` or the permission; `x-kura-roles`: the roles holding it), its `security`
//! requirement, its path parameters and the `{"error": ...}` body of error statuses. A
//! test keeps the documents and the tables in step.

use std::sync::LazyLock;

use axum::Json;
use axum::http::Method;
use kura_api::ErrorBody;
use kura_service::authz::{ProviderRole, TenantRole};
use kura_service::totp::TotpPolicy;
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{Object, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::{Access, CUSTOMER, MANAGEMENT, RouteTable, is_json_api, routes};
use super::{
    agent, alerts, approvals, drills, event_log, jobs, machines, metering, notices, operator, operators,
    plans, requests, reset, restores, runs, support, terminations, totp, users, vault,
};

/// A role field: one of the tenant roles, by their wire names.
pub(crate) fn tenant_role() -> Object {
    strings(TenantRole::ALL.iter().map(|role| role.as_str()))
}

/// A TOTP policy field.
pub(crate) fn totp_policy() -> Object {
    strings(
        [TotpPolicy::Optional, TotpPolicy::Admins, TotpPolicy::Everyone]
            .into_iter()
            .map(TotpPolicy::as_str),
    )
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.collect::<Vec<_>>()))
        .build()
}

/// `kura_store::Usage` (kura-store knows nothing of OpenAPI): its fields, every one a
/// count, read from the type's own serialisation so they cannot drift.
pub(crate) struct UsageSchema;

impl PartialSchema for UsageSchema {
    fn schema() -> RefOr<Schema> {
        let fields = serde_json::to_value(kura_store::Usage::default()).expect("usage serialises");
        let mut object = ObjectBuilder::new();
        for name in fields.as_object().expect("usage is an object").keys() {
            object = object
                .property(
                    name,
                    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)),
                )
                .required(name);
        }
        object.into()
    }
}

impl ToSchema for UsageSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Usage".into()
    }
}

/// A binary body (`application/octet-stream`): packs, id lists, frames.
pub(crate) struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kura customer API",
        description = "The customer listener: agent registration, the vault protocol of agents, \
                       and the tenant-user API. Each operation's `x-kura-access` names what it needs \
                       (`open`, `agent`, or a permission) and `x-kura-roles` the tenant roles \
                       holding that permission."
    ),
    paths(
        api_document,
        notices::for_user,
        notices::mark_read,
        requests::open,
        requests::list_own,
        requests::get_own,
        requests::reply_own,
        agent::register,
        agent::whoami,
        agent::plans,
        agent::start_run,
        agent::report_run,
        vault::info,
        vault::create,
        vault::key_slots,
        vault::add_key_slot,
        vault::remove_key_slot,
        vault::set_machine_key_slot,
        vault::open_session,
        vault::abort_session,
        vault::heartbeat,
        vault::missing,
        vault::put_pack,
        vault::commit,
        jobs::agent_job,
        vault::snapshots,
        vault::snapshot,
        vault::note_restore,
        vault::blobs,
        vault::forget,
        vault::gc,
        vault::verify,
        vault::usage,
        super::snapshots::list,
        super::snapshots::show,
        super::snapshots::tree,
        super::snapshots::tree_form,
        super::snapshots::download,
        super::snapshots::download_form,
        users::login,
        reset::forgot,
        reset::reset,
        users::logout,
        users::me,
        users::update_me,
        users::change_password,
        users::sessions,
        users::revoke_session,
        users::tokens,
        users::create_token,
        users::revoke_token,
        totp::enroll,
        totp::confirm,
        totp::disable,
        reset::force_reset,
        users::list_users,
        users::create_user,
        users::update_user,
        users::delete_user,
        users::admin_networks,
        users::set_admin_networks,
        users::events,
        totp::policy,
        totp::set_policy,
        support::show,
        support::grant,
        support::revoke,
        machines::list,
        machines::usage,
        machines::update,
        machines::revoke,
        machines::issue_registration_token,
        plans::list,
        plans::create,
        plans::show,
        plans::update,
        plans::delete,
        runs::list,
        alerts::list,
        restores::create,
        restores::list,
        restores::show,
        restores::report,
        drills::list,
        drills::start,
        drills::report,
    ),
    components(schemas(ErrorBody))
)]
struct CustomerApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kura management API",
        description = "The management listener: tenants, machines and jobs for the provider's \
                       operators, health and metrics. Each operation's `x-kura-access` names what it \
                       needs (`open` or a permission) and `x-kura-roles` the provider roles holding it."
    ),
    paths(
        operator_document,
        super::monitoring::healthz,
        super::monitoring::metrics,
        operators::login,
        operators::logout,
        operators::me,
        operators::change_password,
        operators::totp_enroll,
        operators::totp_confirm,
        operators::sessions,
        operators::end_session,
        operators::list_tokens,
        operators::create_token,
        operators::revoke_token,
        operators::list_operators,
        operators::create_operator,
        operators::delete_operator,
        operators::disable_operator,
        operators::enable_operator,
        operators::reset_operator_totp,
        notices::publish,
        notices::list,
        notices::get,
        terminations::terminate,
        terminations::cancel,
        terminations::purge_now,
        approvals::list,
        approvals::show,
        approvals::approve,
        approvals::reject,
        metering::export,
        event_log::work_log,
        event_log::verify,
        terminations::key,
        terminations::list,
        terminations::show,
        notices::update,
        requests::list,
        requests::get,
        requests::reply,
        operator::create_tenant,
        operator::list_tenants,
        operator::show_tenant,
        operator::update_tenant,
        operator::suspend_tenant,
        operator::resume_tenant,
        operator::issue_registration_token,
        operator::list_machines,
        operator::revoke_machine,
        support::operator_snapshots,
        jobs::list,
        jobs::run,
        jobs::get,
    ),
    components(schemas(ErrorBody))
)]
struct ManagementApi;

/// Which listener a document describes: its credentials and roles differ.
#[derive(Clone, Copy)]
enum Listener {
    Customer,
    Management,
}

static CUSTOMER_DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| document(CustomerApi::openapi(), CUSTOMER, Listener::Customer));
static MANAGEMENT_DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| document(ManagementApi::openapi(), MANAGEMENT, Listener::Management));

/// The customer listener's document.
pub fn customer_document() -> &'static Value {
    &CUSTOMER_DOCUMENT
}

/// The management listener's document.
pub fn management_document() -> &'static Value {
    &MANAGEMENT_DOCUMENT
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "openapi",
    responses((status = 200, description = "the customer listener's OpenAPI document", body = Object)))]
pub(super) async fn api_document() -> Json<&'static Value> {
    Json(customer_document())
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/operator/openapi.json", tag = "openapi",
    responses((status = 200, description = "the management listener's OpenAPI document", body = Object)))]
pub(super) async fn operator_document() -> Json<&'static Value> {
    Json(management_document())
}

/// The generated document with what the route tables know added to each operation.
fn document(
    api: utoipa::openapi::OpenApi,
    tables: &'static [&'static RouteTable],
    listener: Listener,
) -> Value {
    let mut doc = serde_json::to_value(api).expect("an OpenAPI document serialises");
    doc["components"]["securitySchemes"] = security_schemes(listener);
    let paths = doc["paths"].as_object_mut().expect("a document has paths");
    for (method, path, access, _) in routes(tables).filter(|(_, path, _, _)| is_json_api(path)) {
        let Some(operation) = paths
            .get_mut(*path)
            .and_then(|item| item.get_mut(method.as_str().to_ascii_lowercase()))
            .and_then(Value::as_object_mut)
        else {
            // The test names routes without an operation; the document stays servable.
            continue;
        };
        operation.insert("x-kura-access".into(), json!(access_name(*access)));
        operation.insert("x-kura-roles".into(), json!(roles(*access, listener)));
        operation.insert("security".into(), security(method, *access, listener));
        add_path_parameters(operation, path);
        add_error_responses(operation);
    }
    doc
}

/// `open`, `agent` or the permission's name.
pub fn access_name(access: Access) -> &'static str {
    match access {
        Access::Open => "open",
        Access::Scrape => "scrape",
        Access::Agent => "agent",
        Access::Role(permission) => permission.as_str(),
    }
}

fn roles(access: Access, listener: Listener) -> Vec<&'static str> {
    let Access::Role(permission) = access else {
        return Vec::new();
    };
    let holds = |allows: bool, name: &'static str| allows.then_some(name);
    match listener {
        Listener::Customer => TenantRole::ALL
            .iter()
            .filter_map(|role| holds(role.allows(permission), role.as_str()))
            .collect(),
        Listener::Management => ProviderRole::ALL
            .iter()
            .filter_map(|role| holds(role.allows(permission), role.as_str()))
            .collect(),
    }
}

fn security_schemes(listener: Listener) -> Value {
    let bearer =
        |description: &str| json!({ "type": "http", "scheme": "bearer", "description": description });
    match listener {
        Listener::Customer => json!({
            "agent_credential": bearer("A registered machine's agent credential."),
            "api_token": bearer("A tenant user's API token (`kura_api_…`)."),
            "session": {
                "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                "description": "The session cookie set by `POST /api/v1/login`."
            },
            "csrf_token": {
                "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                "description": "The `csrf_token` of the sign-in, with a session on every request \
                                that is not GET or HEAD (or the form field `csrf_token`)."
            },
        }),
        Listener::Management => json!({
            "operator_token": bearer("An operator token with a provider role."),
            "scrape_token": bearer("The scrape token, the content of `metrics_token_file`."),
        }),
    }
}

/// The credentials that satisfy a route: any one entry of the list.
fn security(method: &Method, access: Access, listener: Listener) -> Value {
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match (access, listener) {
        (Access::Open, _) => json!([]),
        (Access::Agent, _) => json!([{ "agent_credential": [] }]),
        // Without a scrape token configured, a caller inside `operator_networks` needs none.
        (Access::Scrape, _) => json!([{ "scrape_token": [] }, {}]),
        (Access::Role(_), Listener::Management) => json!([{ "operator_token": [] }]),
        (Access::Role(_), Listener::Customer) if changes_state => {
            json!([{ "api_token": [] }, { "session": [], "csrf_token": [] }])
        }
        (Access::Role(_), Listener::Customer) => json!([{ "api_token": [] }, { "session": [] }]),
    }
}

/// Declares each `{name}` of the path as a string path parameter, unless the handler did.
fn add_path_parameters(operation: &mut Map<String, Value>, path: &str) {
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("parameters are a list");
    for name in path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
    {
        let declared = parameters.iter().any(|p| p["in"] == "path" && p["name"] == name);
        if !declared {
            parameters.push(json!({
                "name": name, "in": "path", "required": true, "schema": { "type": "string" }
            }));
        }
    }
    if parameters.is_empty() {
        operation.remove("parameters");
    }
}

/// Every error answer is `{"error": "..."}`, whatever its status.
fn add_error_responses(operation: &mut Map<String, Value>) {
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses are a map");
    for (range, description) in [
        ("4XX", "refused: what to do next is in `error`"),
        ("5XX", "failed on the service's side"),
    ] {
        responses.entry(range).or_insert_with(|| {
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::{
        CUSTOMER, MANAGEMENT, RouteTable, access_name, customer_document, is_json_api, management_document,
        routes,
    };

    const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

    /// Each operation of a document: `METHOD path` and the operation.
    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(METHODS.contains(&method.as_str()), "{path}: unexpected {method}");
                found.push((format!("{} {path}", method.to_uppercase()), &item[method]));
            }
        }
        found
    }

    fn check(doc: &Value, tables: &'static [&'static RouteTable]) {
        assert_eq!(doc["openapi"], "3.1.0");
        let table: BTreeSet<String> = routes(tables)
            .filter(|(_, path, _, _)| is_json_api(path))
            .map(|(method, path, _, _)| format!("{method} {path}"))
            .collect();
        let documented: BTreeSet<String> = operations(doc).into_iter().map(|(route, _)| route).collect();
        let missing: Vec<_> = table.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the document: {missing:?}"
        );
        let unknown: Vec<_> = documented.difference(&table).collect();
        assert!(
            unknown.is_empty(),
            "the document names routes the table does not have: {unknown:?}"
        );
        for (method, path, access, _) in routes(tables).filter(|(_, path, _, _)| is_json_api(path)) {
            let operation = &doc["paths"][*path][method.as_str().to_lowercase()];
            assert_eq!(
                operation["x-kura-access"],
                access_name(*access),
                "{method} {path}"
            );
            assert!(
                operation["security"].is_array(),
                "{method} {path} has no security"
            );
            for name in path
                .split('/')
                .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" && p["name"] == name));
                assert!(declared, "{method} {path}: path parameter {name} is not declared");
            }
        }
    }

    /// Every `$ref` of a document names one of its schemas.
    fn check_references(doc: &Value, node: &Value) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let name = reference.strip_prefix("#/components/schemas/").unwrap();
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "dangling {reference}"
                    );
                }
                map.values().for_each(|value| check_references(doc, value));
            }
            Value::Array(values) => values.iter().for_each(|value| check_references(doc, value)),
            _ => {}
        }
    }

    #[test]
    fn customer_document_matches_the_route_table() {
        check(customer_document(), CUSTOMER);
        check_references(customer_document(), customer_document());
    }

    #[test]
    fn management_document_matches_the_route_table() {
        check(management_document(), MANAGEMENT);
        check_references(management_document(), management_document());
    }

    #[test]
    fn access_comes_from_the_table() {
        let doc = customer_document();
        let create_user = &doc["paths"]["/api/v1/users"]["post"];
        assert_eq!(create_user["x-kura-access"], "manage-users");
        assert_eq!(create_user["x-kura-roles"], serde_json::json!(["admin"]));
        assert_eq!(
            create_user["security"],
            serde_json::json!([{ "api_token": [] }, { "session": [], "csrf_token": [] }])
        );
        assert_eq!(
            doc["paths"]["/api/v1/me"]["get"]["security"][1],
            serde_json::json!({ "session": [] })
        );
        assert_eq!(doc["paths"]["/api/v1/vault"]["get"]["x-kura-access"], "agent");
        assert_eq!(
            doc["paths"]["/api/v1/login"]["post"]["security"],
            serde_json::json!([])
        );
        let operators = management_document();
        let run_job = &operators["paths"]["/api/v1/operator/jobs"]["post"];
        assert_eq!(run_job["x-kura-access"], "run-jobs");
        assert_eq!(run_job["security"], serde_json::json!([{ "operator_token": [] }]));
        let put_pack = &doc["paths"]["/api/v1/vault/sessions/{session}/packs"]["put"];
        assert!(put_pack["requestBody"]["content"]["application/octet-stream"].is_object());
        assert_eq!(
            put_pack["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}
