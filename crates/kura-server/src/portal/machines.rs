//! `/machines`: the tenant's machines with what each has backed up (last seen, last
//! backup, snapshots, bytes added), renaming and revoking them, and "add a machine",
//! which issues a one-time registration token and shows the exact command to run on the
//! new machine (with the CA certificate when the service uses its own CA).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use kura_service::authz::Permission;
use kura_service::ops::machines;
use serde::Deserialize;

use super::Viewer;
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

/// A registration token just issued, with the command that uses it.
pub struct Issued {
    pub command: String,
    pub expires_ms: i64,
}

#[derive(Template)]
#[template(path = "portal/machines.html")]
struct MachinesPage {
    v: Viewer,
    machines: Vec<machines::MachineOverview>,
    issued: Option<Issued>,
    own_ca: bool,
}

impl MachinesPage {
    fn may_operate(&self) -> bool {
        self.v.may(Permission::OperateBackups)
    }

    fn overdue(&self, machine: &machines::MachineOverview) -> bool {
        machine.overdue(self.v.now_ms, super::dashboard::OVERDUE_MS)
    }
}

async fn show(state: &AppState, v: Viewer, issued: Option<Issued>) -> Response {
    let machines = match machines::overview(&state.service, &v.user).await {
        Ok(machines) => machines,
        Err(err) => return v.error_page(&err, "/"),
    };
    let status = if issued.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    render(
        status,
        &MachinesPage {
            v,
            machines,
            issued,
            own_ca: uses_own_ca(state),
        },
    )
}

/// `GET /machines`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    show(&state, v, None).await
}

/// `POST /machines/add`: a registration token, shown once on the page it answers with.
pub(super) async fn add(State(state): State<AppState>, v: Viewer) -> Response {
    let token = match machines::issue_registration_token(&state.service, &v.user).await {
        Ok(token) => token,
        Err(err) => return v.error_page(&err, "/machines"),
    };
    let ca = if uses_own_ca(&state) {
        " --ca-cert ca.pem"
    } else {
        ""
    };
    let issued = Issued {
        command: format!(
            "kura register --server {} --token {}{ca}",
            state.service.public_url, token.token
        ),
        expires_ms: token.expires_ms,
    };
    show(&state, v, Some(issued)).await
}

#[derive(Deserialize)]
pub(super) struct RenameForm {
    #[serde(default)]
    name: String,
}

/// `POST /machines/{id}/rename`.
pub(super) async fn rename(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    match machines::rename(&state.service, &v.user, &id, &form.name).await {
        Ok(machine) => see_other_with_notice("/machines", &v.tr.t1("machine-renamed", "name", &machine.name)),
        Err(err) => v.error_page(&err, "/machines"),
    }
}

/// `POST /machines/{id}/revoke`.
pub(super) async fn revoke(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    match machines::revoke(&state.service, &v.user, &id).await {
        Ok(()) => see_other_with_notice("/machines", &v.tr.t("machine-revoked")),
        Err(err) => v.error_page(&err, "/machines"),
    }
}

/// Whether the service made its own CA (no certificate is configured), so agents need
/// its `ca.pem`.
fn uses_own_ca(state: &AppState) -> bool {
    state.config.tls_cert.is_none()
}

/// The service's own CA certificate, when it made one.
fn own_ca_pem(state: &AppState) -> Option<Vec<u8>> {
    if !uses_own_ca(state) {
        return None;
    }
    std::fs::read(crate::tls::ca_path(&state.config.data_dir)).ok()
}

/// `GET /ca.pem`: the certificate agents must trust when the service uses its own CA (a
/// public certificate; the browser showing the portal has accepted it already).
pub(super) async fn ca_pem(State(state): State<AppState>) -> Response {
    match own_ca_pem(&state) {
        Some(pem) => (
            [
                (CONTENT_TYPE, "application/x-pem-file"),
                (CONTENT_DISPOSITION, "attachment; filename=\"ca.pem\""),
            ],
            pem,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this service uses a certificate from a public CA; no ca.pem is needed",
        )
            .into_response(),
    }
}
