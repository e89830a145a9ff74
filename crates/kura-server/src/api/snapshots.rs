//! The tenant's snapshots for tenant users ("web restore"): list, show, browse a
//! directory, download a file or a folder as a `.tar` or `.zip`. The rules are
//! `kura_service::ops::snapshots`'; this module only reads requests and writes answers.
//!
//! An encrypted vault's passphrase comes with each browse or download: as the header
//! `X-Kura-Passphrase` of a `GET`, or as the form field `passphrase` of a `POST` to the
//! same path (what the portal's forms send; with a session cookie the form also carries
//! `csrf_token`). It is used for that request only and is never stored or logged.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kura_format::SnapshotKind;
use kura_service::ops::snapshots::{
    self, ArchiveFormat, Download, DownloadKind, ListFilter, Passphrase, SnapshotDetail, SnapshotPage,
    SnapshotPath, SnapshotSummary, TreeEntry, TreePage,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse_time;
use super::types::rfc3339;
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// The header carrying an encrypted vault's passphrase on a `GET`.
pub const PASSPHRASE_HEADER: &str = "x-kura-passphrase";

/// `GET /api/v1/snapshots` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only snapshots committed by this machine (its id).
    machine: Option<String>,
    /// Only snapshots with exactly this source name.
    source: Option<String>,
    /// `files` or `image`.
    kind: Option<String>,
    /// RFC 3339: only snapshots started at or after this time.
    from: Option<String>,
    /// RFC 3339: only snapshots started before this time.
    to: Option<String>,
    /// Snapshots per page: 100 unless given, at most 1000.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Counts of one backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotStatsView {
    pub files: u64,
    pub dirs: u64,
    /// Logical bytes of the files (or the image) in the snapshot.
    pub bytes: u64,
    /// Bytes read from disk (unchanged files are not read).
    pub bytes_read: u64,
    /// Stored bytes this run added to the vault.
    pub bytes_added: u64,
    pub chunks_added: u64,
    /// Files that could not be read and are missing from the snapshot.
    pub errors: u64,
}

/// A snapshot of the tenant, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotView {
    pub id: String,
    /// The machine that committed it (absent only for snapshots older than that record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_name: Option<String>,
    /// `files` or `image`.
    pub kind: String,
    /// Start and end of the backup run, RFC 3339 UTC (milliseconds) …
    pub time: String,
    pub end_time: String,
    /// … and in nanoseconds since the epoch.
    pub time_ns: i64,
    pub end_time_ns: i64,
    pub host: String,
    pub source: String,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub stats: SnapshotStatsView,
}

impl From<SnapshotSummary> for SnapshotView {
    fn from(s: SnapshotSummary) -> Self {
        SnapshotView {
            id: s.id.to_hex(),
            machine_id: s.machine_id.map(|m| m.to_string()),
            machine_name: s.machine_name,
            kind: s.kind.to_string(),
            time: rfc3339(s.time_ns.div_euclid(1_000_000)),
            end_time: rfc3339(s.end_time_ns.div_euclid(1_000_000)),
            time_ns: s.time_ns,
            end_time_ns: s.end_time_ns,
            host: s.host,
            source: s.source,
            tags: s.tags,
            parent: s.parent.map(|p| p.to_hex()),
            stats: SnapshotStatsView {
                files: s.stats.files,
                dirs: s.stats.dirs,
                bytes: s.stats.bytes,
                bytes_read: s.stats.bytes_read,
                bytes_added: s.stats.bytes_added,
                chunks_added: s.stats.chunks_added,
                errors: s.stats.errors,
            },
        }
    }
}

/// `GET /api/v1/snapshots`: a page of the tenant's snapshots, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotListView {
    pub snapshots: Vec<SnapshotView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<SnapshotPage> for SnapshotListView {
    fn from(page: SnapshotPage) -> Self {
        SnapshotListView {
            snapshots: page.snapshots.into_iter().map(SnapshotView::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// `GET /api/v1/snapshots/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDetailView {
    #[serde(flatten)]
    pub snapshot: SnapshotView,
    /// Whether browsing and downloading need the vault's passphrase.
    pub encrypted: bool,
    /// Whether verification found a chunk it uses damaged or missing.
    pub damaged: bool,
    /// Chunks it references.
    pub reference_count: u64,
}

impl From<SnapshotDetail> for SnapshotDetailView {
    fn from(d: SnapshotDetail) -> Self {
        SnapshotDetailView {
            snapshot: d.summary.into(),
            encrypted: d.encrypted,
            damaged: d.damaged,
            reference_count: d.reference_count,
        }
    }
}

/// A partition of an image snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionView {
    pub number: u32,
    /// Offset and length in bytes.
    pub start: u64,
    pub length: u64,
    /// The partition type, e.g. `Linux filesystem` or `0x83`.
    pub kind: String,
    /// GPT name; empty for MBR.
    pub name: String,
    /// The file system found on it (`ext4`, `xfs`, …); only ext2/3/4 can be browsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
}

impl From<&snapshots::PartitionInfo> for PartitionView {
    fn from(p: &snapshots::PartitionInfo) -> Self {
        PartitionView {
            number: p.number,
            start: p.start,
            length: p.length,
            kind: p.kind.clone(),
            name: p.name.clone(),
            filesystem: p.filesystem.clone(),
        }
    }
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreeEntryView {
    /// The name (invalid UTF-8 replaced).
    pub name: String,
    /// Its path, for the next `tree` or `download` (invalid UTF-8 replaced).
    pub path: String,
    /// The path's bytes in hex, only when it is not UTF-8: pass it as `path_hex`
    /// instead of `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// `file`, `dir`, `symlink`, `fifo`, `char_device`, `block_device`, `socket`, or
    /// `partition` at the root of an image snapshot.
    pub kind: String,
    /// Bytes of a file; a symlink target's length; a partition's length.
    pub size: u64,
    /// Permission bits, octal (`0644`).
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, RFC 3339 UTC.
    pub mtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionView>,
}

impl From<TreeEntry> for TreeEntryView {
    fn from(e: TreeEntry) -> Self {
        TreeEntryView {
            name: e.name_lossy(),
            path: e.path.text(),
            path_hex: e.path.hex(),
            kind: e.kind.as_str().to_owned(),
            size: e.size,
            mode: format!("{:04o}", e.mode & 0o7777),
            uid: e.uid,
            gid: e.gid,
            mtime: rfc3339(e.mtime_ns.div_euclid(1_000_000)),
            link_target: e.link_target.map(|t| String::from_utf8_lossy(&t).into_owned()),
            partition: e.partition.as_ref().map(PartitionView::from),
        }
    }
}

/// An image snapshot's layout, at its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageLayoutView {
    /// Bytes of the image.
    pub size: u64,
    /// `dos`, `gpt` or `none`.
    pub table: String,
    /// Damage found in the partition table that did not stop it from being read.
    pub warnings: Vec<String>,
}

/// `GET /api/v1/snapshots/{id}/tree`: one page of one directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreeView {
    pub snapshot_id: String,
    /// The directory listed (`/` for the root; invalid UTF-8 replaced).
    pub path: String,
    /// The directory's bytes in hex, only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// Entries in the whole directory, and where this page starts.
    pub total: u64,
    pub offset: u64,
    /// Sorted by name.
    pub entries: Vec<TreeEntryView>,
    /// At the root of an image snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageLayoutView>,
}

impl From<TreePage> for TreeView {
    fn from(p: TreePage) -> Self {
        TreeView {
            snapshot_id: p.snapshot_id.to_hex(),
            path: p.path.text(),
            path_hex: p.path.hex(),
            total: p.total,
            offset: p.offset,
            entries: p.entries.into_iter().map(TreeEntryView::from).collect(),
            image: p.image.map(|l| ImageLayoutView {
                size: l.size,
                table: l.table,
                warnings: l.warnings,
            }),
        }
    }
}

/// `GET /api/v1/snapshots/{id}/tree` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TreeQuery {
    /// The directory (`/` when absent). In an image snapshot, `/` lists the partitions
    /// and `/N/...` is a directory on partition N.
    path: Option<String>,
    /// The directory's bytes in hex, instead of `path`, for names that are not UTF-8
    /// (as a listing's `path_hex` gives them).
    path_hex: Option<String>,
    /// Entries to skip.
    offset: Option<u64>,
    /// Entries per page: 500 unless given, at most 5000.
    limit: Option<u32>,
}

/// `POST /api/v1/snapshots/{id}/tree` form: the query's fields and the passphrase.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TreeForm {
    path: Option<String>,
    path_hex: Option<String>,
    offset: Option<u64>,
    limit: Option<u32>,
    /// The vault's passphrase (or recovery key), for an encrypted vault. (A cookie
    /// session's form also carries `csrf_token`.)
    passphrase: Option<String>,
}

/// `GET /api/v1/snapshots/{id}/download` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The file or folder (`/`: the whole snapshot as a `.tar`). In an image snapshot,
    /// `/N/...` on partition N.
    path: Option<String>,
    /// The path's bytes in hex, instead of `path`, for names that are not UTF-8 (as a
    /// listing's `path_hex` gives them).
    path_hex: Option<String>,
    /// A folder's archive: `tar` (when absent) or `zip`.
    format: Option<String>,
}

/// `POST /api/v1/snapshots/{id}/download` form.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DownloadForm {
    path: Option<String>,
    path_hex: Option<String>,
    format: Option<String>,
    /// The vault's passphrase (or recovery key), for an encrypted vault. (A cookie
    /// session's form also carries `csrf_token`.)
    passphrase: Option<String>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))
}

fn form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, ApiError> {
    form.map(|Form(f)| f).map_err(|err| {
        ApiError::new(
            err.status(),
            format!(
                "expected a form (application/x-www-form-urlencoded): {}",
                err.body_text()
            ),
        )
    })
}

/// The passphrase header's bytes, as sent (`to_str` would refuse non-ASCII ones).
fn header_passphrase(headers: &HeaderMap) -> Option<Passphrase> {
    headers
        .get(PASSPHRASE_HEADER)
        .map(|value| Passphrase::new(value.as_bytes()))
}

fn form_passphrase(text: Option<String>) -> Option<Passphrase> {
    text.filter(|t| !t.is_empty()).map(Passphrase::new)
}

/// The tenant's snapshots across its machines, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/snapshots", tag = "snapshots", operation_id = "list_snapshots", params(ListQuery),
    responses((status = 200, body = SnapshotListView)))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SnapshotListView>, ApiError> {
    let q = query(q)?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some("files") => Some(SnapshotKind::Files),
        Some("image") => Some(SnapshotKind::Image),
        Some(_) => return Err(ApiError::invalid("kind must be files or image")),
    };
    let filter = ListFilter {
        machine: q.machine,
        source: q.source,
        kind,
        from_ms: parse_time("from", q.from.as_deref())?,
        to_ms: parse_time("to", q.to.as_deref())?,
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = snapshots::list(&state.service, &user, &filter).await?;
    Ok(Json(page.into()))
}

/// One snapshot (a full id or a unique prefix), with its stats.
#[utoipa::path(get, path = "/api/v1/snapshots/{id}", tag = "snapshots", operation_id = "show_snapshot",
    responses((status = 200, body = SnapshotDetailView)))]
pub(super) async fn show(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<SnapshotDetailView>, ApiError> {
    Ok(Json(snapshots::show(&state.service, &user, &id).await?.into()))
}

/// One page of a directory of the snapshot, without reading file data. An encrypted
/// vault needs its passphrase in `X-Kura-Passphrase`.
#[utoipa::path(get, path = "/api/v1/snapshots/{id}/tree", tag = "snapshots", operation_id = "snapshot_tree", params(TreeQuery),
    responses((status = 200, body = TreeView)))]
pub(super) async fn tree(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<TreeQuery>, QueryRejection>,
) -> Result<Json<TreeView>, ApiError> {
    let q = query(q)?;
    let passphrase = header_passphrase(&headers);
    let page = snapshots::tree(
        &state.service,
        &user,
        &id,
        &SnapshotPath::from_request(q.path.as_deref(), q.path_hex.as_deref())?,
        passphrase.as_ref(),
        q.offset.unwrap_or(0),
        q.limit,
    )
    .await?;
    Ok(Json(page.into()))
}

/// `tree` with its fields and the passphrase in a form body (the portal's form).
#[utoipa::path(post, path = "/api/v1/snapshots/{id}/tree", tag = "snapshots", operation_id = "snapshot_tree_form",
    request_body(content = TreeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TreeView)))]
pub(super) async fn tree_form(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    f: Result<Form<TreeForm>, FormRejection>,
) -> Result<Json<TreeView>, ApiError> {
    let f = form(f)?;
    let passphrase = form_passphrase(f.passphrase);
    let page = snapshots::tree(
        &state.service,
        &user,
        &id,
        &SnapshotPath::from_request(f.path.as_deref(), f.path_hex.as_deref())?,
        passphrase.as_ref(),
        f.offset.unwrap_or(0),
        f.limit,
    )
    .await?;
    Ok(Json(page.into()))
}

/// `attachment` with the name as plain ASCII and, exactly, as RFC 5987 UTF-8.
fn content_disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The path a download names; unlike a listing's, it has no default.
fn download_path(text: Option<&str>, hex: Option<&str>) -> Result<SnapshotPath, ApiError> {
    if text.is_none_or(str::is_empty) && hex.is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "path is missing: name a file or a folder (/ for everything)",
        ));
    }
    Ok(SnapshotPath::from_request(text, hex)?)
}

/// The streamed answer of a download.
pub fn download_response(download: Download) -> Response {
    let content_type = match download.kind {
        DownloadKind::File => "application/octet-stream",
        DownloadKind::Tar => "application/x-tar",
        DownloadKind::Zip => "application/zip",
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&download.file_name),
    );
    if let Some(size) = download.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    let body = Body::from_stream(futures::stream::unfold(download.body, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (headers, body).into_response()
}

/// Downloads a file (its bytes) or a folder (a `.tar`, or a `.zip` with `format=zip`,
/// streamed as it is built) of the snapshot. An encrypted vault needs its passphrase in `X-Kura-Passphrase`. Recorded in
/// the tenant's event log.
#[utoipa::path(get, path = "/api/v1/snapshots/{id}/download", tag = "snapshots", operation_id = "snapshot_download", params(DownloadQuery),
    responses((status = 200, description = "the file's bytes, or a `.tar` or `.zip` of the folder", content(
        (super::openapi::Binary = "application/octet-stream"),
        (super::openapi::Binary = "application/x-tar"),
        (super::openapi::Binary = "application/zip")))))]
pub(super) async fn download(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let passphrase = header_passphrase(&headers);
    let path = download_path(q.path.as_deref(), q.path_hex.as_deref())?;
    let format = ArchiveFormat::from_request(q.format.as_deref())?;
    let download =
        snapshots::download(&state.service, &user, &id, &path, passphrase.as_ref(), format).await?;
    Ok(download_response(download))
}

/// `download` with its path and the passphrase in a form body (the portal's form).
#[utoipa::path(post, path = "/api/v1/snapshots/{id}/download", tag = "snapshots", operation_id = "snapshot_download_form",
    request_body(content = DownloadForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the file's bytes, or a `.tar` or `.zip` of the folder", content(
        (super::openapi::Binary = "application/octet-stream"),
        (super::openapi::Binary = "application/x-tar"),
        (super::openapi::Binary = "application/zip")))))]
pub(super) async fn download_form(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    f: Result<Form<DownloadForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let f = form(f)?;
    let passphrase = form_passphrase(f.passphrase);
    let path = download_path(f.path.as_deref(), f.path_hex.as_deref())?;
    let format = ArchiveFormat::from_request(f.format.as_deref())?;
    let download =
        snapshots::download(&state.service, &user, &id, &path, passphrase.as_ref(), format).await?;
    Ok(download_response(download))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_offered_plain_and_exact() {
        let value = content_disposition("報告 \"Q1\".pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"__ _Q1_.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A%20%22Q1%22.pdf"
        );
    }
}
