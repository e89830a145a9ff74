//! `/snapshots`: the tenant's snapshots (filtered by machine, kind, source and date,
//! newest first, a page at a time) and `/snapshots/{id}`: one snapshot, its directories
//! (or an image's partitions and the files inside ext file systems) without reading file
//! data, and downloads of a file or a folder as `.tar` or `.zip` ("web restore").
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
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::model::{MachineRecord, RestoreRecord, RestoreStatus};
use kura_service::ops::machines;
use kura_service::ops::restores::{self, RestoreRequest};
use kura_service::ops::snapshots::{
    self, ArchiveFormat, EntryKind, ListFilter, Passphrase, SnapshotDetail, SnapshotPath, SnapshotSummary,
    TreePage,
};
use serde::Deserialize;

use super::{Viewer, day_start, nonempty, query_string};
use crate::api::snapshots::download_response;
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

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
    crumbs: Vec<(String, SnapshotPath)>,
    /// The tenant's active machines, for a restore job (roles that restore).
    machines: Vec<MachineRecord>,
    /// This snapshot's restore jobs, newest first.
    restores: Vec<RestoreRecord>,
    /// The restore form as sent (kept when it is refused).
    restore_form: RestoreForm,
}

impl SnapshotPage {
    fn id(&self) -> String {
        self.detail.summary.id.to_hex()
    }

    fn may_restore(&self) -> bool {
        self.v.may(Permission::Restore)
    }

    fn is_image(&self) -> bool {
        self.detail.summary.kind == SnapshotKind::Image
    }

    /// The machine preselected for a restore: the one named in the form, else the
    /// snapshot's own.
    fn restore_machine(&self, machine: &MachineRecord) -> bool {
        if self.restore_form.machine_id.is_empty() {
            self.detail.summary.machine_id.as_ref() == Some(&machine.id)
        } else {
            self.restore_form.machine_id == machine.id.as_str()
        }
    }

    fn machine_name(&self, id: &kura_service::ids::MachineId) -> String {
        self.machines
            .iter()
            .find(|m| &m.id == id)
            .map_or_else(|| id.to_string(), |m| m.name.clone())
    }

    fn restore_class(&self, status: &RestoreStatus) -> &'static str {
        match status {
            RestoreStatus::Succeeded => "ok",
            RestoreStatus::Failed => "bad",
            RestoreStatus::Queued | RestoreStatus::Running => "muted",
        }
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
    fn page_query(&self, path: &SnapshotPath, offset: &u64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        append_path(&mut query, path);
        query.append_pair("offset", &offset.to_string()).finish()
    }

    /// The query string that opens `path`.
    fn path_query(&self, path: &SnapshotPath) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        append_path(&mut query, path);
        query.finish()
    }

    /// The query string that downloads `path` (a folder in `format`).
    fn download_query(&self, path: &SnapshotPath, format: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        append_path(&mut query, path);
        if !format.is_empty() {
            query.append_pair("format", format);
        }
        query.finish()
    }

    /// A form's `path` field: the path, unless only `path_hex` names it.
    fn field_text(&self, path: &SnapshotPath) -> String {
        if path.hex().is_some() {
            String::new()
        } else {
            path.text()
        }
    }

    /// A form's `path_hex` field.
    fn field_hex(&self, path: &SnapshotPath) -> String {
        path.hex().unwrap_or_default()
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

/// `path=`, or `path_hex=` for a path that is not UTF-8.
fn append_path(query: &mut form_urlencoded::Serializer<'_, String>, path: &SnapshotPath) {
    match path.hex() {
        Some(hex) => query.append_pair("path_hex", &hex),
        None => query.append_pair("path", &path.text()),
    };
}

/// What a step of browsing or a download names: in the query of a `GET`, or in the
/// form of a `POST` with the passphrase of an encrypted vault (never in a URL).
#[derive(Deserialize, Default)]
pub(super) struct BrowseRequest {
    path: Option<String>,
    path_hex: Option<String>,
    #[serde(default)]
    offset: u64,
    /// A folder's archive: `tar` unless `zip`.
    format: Option<String>,
    #[serde(default)]
    passphrase: String,
}

impl BrowseRequest {
    fn path(&self) -> Result<SnapshotPath, ServiceError> {
        SnapshotPath::from_request(self.path.as_deref(), self.path_hex.as_deref())
    }
}

fn crumbs(path: &SnapshotPath) -> Vec<(String, SnapshotPath)> {
    let mut so_far = SnapshotPath::root();
    let mut out = vec![("/".to_owned(), so_far.clone())];
    for name in path.as_bytes().split(|b| *b == b'/').filter(|n| !n.is_empty()) {
        so_far = so_far.join(name);
        out.push((String::from_utf8_lossy(name).into_owned(), so_far.clone()));
    }
    out
}

async fn show(state: &AppState, v: Viewer, id: &str, request: BrowseRequest, unlocking: bool) -> Response {
    show_with(state, v, id, request, unlocking, RestoreForm::default(), None).await
}

async fn show_with(
    state: &AppState,
    v: Viewer,
    id: &str,
    request: BrowseRequest,
    unlocking: bool,
    restore_form: RestoreForm,
    refusal: Option<ServiceError>,
) -> Response {
    let detail = match snapshots::show(&state.service, &v.user, id).await {
        Ok(detail) => detail,
        Err(err) => return v.error_page(&err, "/snapshots"),
    };
    let (machines, restores) = if v.may(Permission::Restore) {
        let machines = match machines::list(&state.service, &v.user).await {
            Ok(machines) => machines.into_iter().filter(|m| m.revoked_ms.is_none()).collect(),
            Err(err) => return v.error_page(&err, "/snapshots"),
        };
        match restores::list(&state.service, &v.user, Some(&detail.summary.id.to_hex())).await {
            Ok(restores) => (machines, restores),
            Err(err) => return v.error_page(&err, "/snapshots"),
        }
    } else {
        (Vec::new(), Vec::new())
    };
    let path = match request.path() {
        Ok(path) => path,
        Err(err) => return v.error_page(&err, "/snapshots"),
    };
    let passphrase = unlocking.then_some(request.passphrase);
    let may_browse = v.may(Permission::Restore) && (!detail.encrypted || passphrase.is_some());
    let (tree, error) = if may_browse {
        let key = passphrase.as_deref().map(Passphrase::new);
        match snapshots::tree(
            &state.service,
            &v.user,
            id,
            &path,
            key.as_ref(),
            request.offset,
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
    let error = match refusal {
        Some(err) => Some((err.kind, super::describe(&v.tr, &err).1)),
        None => error,
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
            crumbs: crumbs(&path),
            v,
            detail,
            tree,
            passphrase,
            error: error.map(|(_, text)| text),
            machines,
            restores,
            restore_form,
        },
    )
}

/// The restore form of the snapshot page.
#[derive(Deserialize, Default)]
pub(super) struct RestoreForm {
    #[serde(default)]
    machine_id: String,
    #[serde(default)]
    target: String,
    /// One path inside the snapshot per line.
    #[serde(default)]
    paths: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    overwrite: Option<String>,
}

/// `POST /snapshots/{id}/restore`: a restore job for a machine.
pub(super) async fn restore(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RestoreForm>,
) -> Response {
    let request = RestoreRequest {
        snapshot_id: id.clone(),
        machine_id: form.machine_id.clone(),
        target: form.target.trim().to_owned(),
        paths: form
            .paths
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
        overwrite: form.overwrite.is_some(),
    };
    match restores::request(&state.service, &v.user, request).await {
        Ok(_) => see_other_with_notice(
            &format!("/snapshots/{id}#restore"),
            &v.tr.t("restore-queued-notice"),
        ),
        Err(err) => show_with(&state, v, &id, BrowseRequest::default(), false, form, Some(err)).await,
    }
}

/// `GET /snapshots/{id}?path=&offset=`.
pub(super) async fn page(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(query): Query<BrowseRequest>,
) -> Response {
    show(&state, v, &id, query, false).await
}

/// `POST /snapshots/{id}`: a step of browsing an encrypted vault, with its passphrase.
pub(super) async fn browse(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<BrowseRequest>,
) -> Response {
    show(&state, v, &id, form, true).await
}

async fn send(
    state: &AppState,
    v: Viewer,
    id: &str,
    mut request: BrowseRequest,
    unlocking: bool,
) -> Response {
    let key = unlocking.then(|| Passphrase::new(std::mem::take(&mut request.passphrase)));
    let started = match (
        request.path(),
        ArchiveFormat::from_request(request.format.as_deref()),
    ) {
        (Ok(path), Ok(format)) => {
            snapshots::download(&state.service, &v.user, id, &path, key.as_ref(), format).await
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    match started {
        Ok(download) => download_response(download),
        Err(err) => v.error_page(&err, "/snapshots"),
    }
}

/// `GET /snapshots/{id}/download?path=&format=`: a file, or a folder as `.tar` or `.zip`,
/// streamed.
pub(super) async fn download(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(query): Query<BrowseRequest>,
) -> Response {
    send(&state, v, &id, query, false).await
}

/// `POST /snapshots/{id}/download`: the same for an encrypted vault, with its passphrase.
pub(super) async fn download_encrypted(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<BrowseRequest>,
) -> Response {
    send(&state, v, &id, form, true).await
}
