//! `/deletions`: the signed records the purges of terminated tenants left, the public key
//! that checks them, and each record to download as the file an auditor checks with
//! `kura-server deletion verify`. The same operations as `/api/v1/operator/deletions`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use kura_service::model::DeletionSummary;
use kura_service::ops::terminations;

use super::Desk;
use crate::app::AppState;
use crate::web::render;

#[derive(Template)]
#[template(path = "console/deletions.html")]
struct DeletionsPage {
    d: Desk,
    records: Vec<DeletionSummary>,
    public_key: String,
}

/// `GET /deletions`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    match terminations::deletions(&state.service, &d.operator).await {
        Ok(records) => {
            let public_key = terminations::public_key(&state.service);
            render(
                StatusCode::OK,
                &DeletionsPage {
                    d,
                    records,
                    public_key,
                },
            )
        }
        Err(err) => d.error_page(&err, "/"),
    }
}

/// `GET /deletions/{id}`: the signed record as a file.
pub(super) async fn download(State(state): State<AppState>, d: Desk, Path(id): Path<String>) -> Response {
    match terminations::deletion(&state.service, &d.operator, &id).await {
        // The id was checked to be 32 hex digits, so it is safe in the header.
        Ok(record) => (
            [
                (CONTENT_TYPE, "application/json".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"kura-deletion-{id}.json\""),
                ),
            ],
            record,
        )
            .into_response(),
        Err(err) => d.error_page(&err, "/deletions"),
    }
}
