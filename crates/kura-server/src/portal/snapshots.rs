//! `/snapshots`: the tenant's snapshots (filtered by machine, kind, source and date,
//! newest first, a page at a time) and `/snapshots/{id}`: one snapshot, its directories
//! (or an image's partitions and the files inside ext file systems) without reading file
//! data, and downloads of a file or a folder as `.tar` ("web restore").
//!
//! An encrypted vault needs its passphrase for each browse or download: the page asks for
//! it and says that it is sent to the service for that request only, held in memory
//! while it runs and never stored or logged. Its navigation then posts the passphrase
//! again with each step (the browser keeps it in the page; the service keeps nothing).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_format::SnapshotKind;
use kura_service::authz::Permission;
use kura_service::model::MachineRecord;
use kura_service::ops::machines;
use kura_service::ops::snapshots::{
    self, EntryKind, ListFilter, Passphrase, SnapshotDetail, SnapshotSummary, TreePage,
};
use serde::Deserialize;

use super::{Viewer, day_start, nonempty, query_string};
use crate::api::snapshots::download_response;
use crate::app::AppState;
use crate::web::render;

/// Snapshots per page of the list.
const LIST_PAGE: u32 = 50;
/// Entries per page of a directory.
const TREE_PAGE: u32 = 200;

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    machine: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    source: String,
    /// `YYYY-MM-DD` in the tenant's time zone.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "portal/snapshots.html")]
struct ListPage {
    v: Viewer,
    query: ListQuery,
    machines: Vec<MachineRecord>,
    snapshots: Vec<SnapshotSummary>,
    /// The query string of the next page, if there is one.
    next: Option<String>,
    error: Option<String>,
}

/// `GET /snapshots`.
pub(super) async fn list(
    State(state): State<AppState>,
    v: Viewer,
    Query(query): Query<ListQuery>,
) -> Response {
    let zone = v.tenant.time_zone.clone();
    let kind = match query.kind.as_str() {
        "files" => Some(SnapshotKind::Files),
        "image" => Some(SnapshotKind::Image),
        _ => None,
    };
    let filter = ListFilter {
        machine: nonempty(&query.machine),
        source: nonempty(&query.source),
        kind,
        from_ms: nonempty(&query.from).and_then(|day| day_start(&zone, &day)),
        // The "to" day is included: up to the start of the next day.
        to_ms: nonempty(&query.to)
            .and_then(|day| day_start(&zone, &day))
            .map(|ms| ms + 86_400_000),
        limit: Some(LIST_PAGE),
        cursor: nonempty(&query.cursor),
    };
    let machines = match machines::list(&state.service, &v.user).await {
        Ok(machines) => machines,
        Err(err) => return v.error_page(&err, "/"),
    };
    let (snapshots, next, error) = match snapshots::list(&state.service, &v.user, &filter).await {
        Ok(page) => {
            let next = page.next_cursor.map(|cursor| {
                let pairs = [
                    ("machine", query.machine.as_str()),
                    ("kind", query.kind.as_str()),
                    ("source", query.source.as_str()),
                    ("from", query.from.as_str()),
                    ("to", query.to.as_str()),
                    ("cursor", cursor.as_str()),
                ];
                query_string(pairs)
            });
            (page.snapshots, next, None)
        }
        Err(err) => (Vec::new(), None, Some(super::describe(&v.tr, &err).1)),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &ListPage {
            v,
            query,
            machines,
            snapshots,
            next,
            error,
        },
    )
}

#[derive(Template)]
#[template(path = "portal/snapshot.html")]
struct SnapshotPage {
    v: Viewer,
    detail: SnapshotDetail,
    /// The directory shown, when the role may browse and the vault is open.
    tree: Option<TreePage>,
    /// The passphrase of this request, to post again with the next step (encrypted only).
    passphrase: String,
    error: Option<String>,
    /// Parent directories of the shown one: (name, path).
    crumbs: Vec<(String, String)>,
}

impl SnapshotPage {
    fn id(&self) -> String {
        self.detail.summary.id.to_hex()
    }

    fn may_restore(&self) -> bool {
        self.v.may(Permission::Restore)
    }

    fn browsable(&self, kind: &EntryKind) -> bool {
        matches!(kind, EntryKind::Dir | EntryKind::Partition)
    }

    fn downloadable(&self, kind: &EntryKind) -> bool {
        matches!(kind, EntryKind::File | EntryKind::Dir)
    }

    fn kind_label(&self, kind: &EntryKind) -> String {
        self.v.tr.t(&format!("entry-{}", kind.as_str()))
    }

    /// The query string of the directory page at `offset`.
    fn page_query(&self, path: &str, offset: &u64) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("path", path)
            .append_pair("offset", &offset.to_string())
            .finish()
    }

    /// The query string that opens `path`.
    fn path_query(&self, path: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("path", path)
            .finish()
    }

    fn next_offset(&self) -> Option<u64> {
        let tree = self.tree.as_ref()?;
        let next = tree.offset + tree.entries.len() as u64;
        (next < tree.total).then_some(next)
    }

    fn previous_offset(&self) -> Option<u64> {
        let tree = self.tree.as_ref()?;
        (tree.offset > 0).then(|| tree.offset.saturating_sub(u64::from(TREE_PAGE)))
    }
}

#[derive(Deserialize, Default)]
pub(super) struct BrowseQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    offset: u64,
}

#[derive(Deserialize, Default)]
pub(super) struct BrowseForm {
    #[serde(default)]
    path: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    passphrase: String,
}

fn crumbs(path: &str) -> Vec<(String, String)> {
    let mut out = vec![("/".to_owned(), "/".to_owned())];
    let mut so_far = String::new();
    for name in path.split('/').filter(|n| !n.is_empty()) {
        so_far.push('/');
        so_far.push_str(name);
        out.push((name.to_owned(), so_far.clone()));
    }
    out
}

async fn show(
    state: &AppState,
    v: Viewer,
    id: &str,
    path: &str,
    offset: u64,
    passphrase: Option<String>,
) -> Response {
    let detail = match snapshots::show(&state.service, &v.user, id).await {
        Ok(detail) => detail,
        Err(err) => return v.error_page(&err, "/snapshots"),
    };
    let path = if path.is_empty() { "/" } else { path };
    let may_browse = v.may(Permission::Restore) && (!detail.encrypted || passphrase.is_some());
    let (tree, error) = if may_browse {
        let key = passphrase.as_deref().map(Passphrase::new);
        match snapshots::tree(
            &state.service,
            &v.user,
            id,
            path,
            key.as_ref(),
            offset,
            Some(TREE_PAGE),
        )
        .await
        {
            Ok(tree) => (Some(tree), None),
            Err(err) => (None, Some((err.kind, super::describe(&v.tr, &err).1))),
        }
    } else {
        (None, None)
    };
    let status = error
        .as_ref()
        .map_or(StatusCode::OK, |(kind, _)| crate::error::status_of(*kind));
    // A wrong passphrase is not kept for the next step.
    let passphrase = if tree.is_some() {
        passphrase.unwrap_or_default()
    } else {
        String::new()
    };
    render(
        status,
        &SnapshotPage {
            crumbs: crumbs(path),
            v,
            detail,
            tree,
            passphrase,
            error: error.map(|(_, text)| text),
        },
    )
}

/// `GET /snapshots/{id}?path=&offset=`.
pub(super) async fn page(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Response {
    show(&state, v, &id, &query.path, query.offset, None).await
}

/// `POST /snapshots/{id}`: a step of browsing an encrypted vault, with its passphrase.
pub(super) async fn browse(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<BrowseForm>,
) -> Response {
    show(&state, v, &id, &form.path, form.offset, Some(form.passphrase)).await
}

/// `GET /snapshots/{id}/download?path=`: a file, or a folder as `.tar`, streamed.
pub(super) async fn download(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Response {
    match snapshots::download(&state.service, &v.user, &id, &query.path, None).await {
        Ok(download) => download_response(download),
        Err(err) => v.error_page(&err, "/snapshots"),
    }
}

/// `POST /snapshots/{id}/download`: the same for an encrypted vault, with its passphrase.
pub(super) async fn download_encrypted(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<BrowseForm>,
) -> Response {
    let key = Passphrase::new(form.passphrase);
    match snapshots::download(&state.service, &v.user, &id, &form.path, Some(&key)).await {
        Ok(download) => download_response(download),
        Err(err) => v.error_page(&err, "/snapshots"),
    }
}
