//! `/security` (security admins): the admin IP allow-list (with the caller's own address
//! shown, and the service's refusal of a list that would lock the caller out), the TOTP
//! policy, and support access (grant for some hours, withdraw, current state).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ops::{support, totp, users};
use kura_service::totp::TotpPolicy;
use serde::Deserialize;

use super::Viewer;
use super::account::{Outcome, status_after};
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "portal/security.html")]
struct SecurityPage {
    v: Viewer,
    outcome: Option<Outcome>,
    /// The allow-list, one CIDR per line.
    networks: String,
    /// The address this request came from.
    caller: String,
    policies: Vec<(&'static str, String, bool)>,
    support_until: Option<i64>,
    max_hours: u32,
}

fn show(v: Viewer, caller: String, outcome: Option<Outcome>) -> Response {
    let tenant = &v.tenant;
    let networks = tenant
        .admin_networks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let policies = [TotpPolicy::Optional, TotpPolicy::Admins, TotpPolicy::Everyone]
        .into_iter()
        .map(|policy| {
            (
                policy.as_str(),
                v.tr.t(&format!("totp-policy-{}", policy.as_str())),
                policy == tenant.totp_policy,
            )
        })
        .collect();
    let support_until = support::active_until(tenant, v.now_ms);
    render(
        status_after(&outcome, StatusCode::OK),
        &SecurityPage {
            v,
            outcome,
            networks,
            caller,
            policies,
            support_until,
            max_hours: support::MAX_SUPPORT_HOURS,
        },
    )
}

fn address(caller: &kura_service::authz::Caller) -> String {
    caller.source.map_or_else(String::new, |ip| ip.to_string())
}

/// `GET /security`.
pub(super) async fn page(CallerInfo(caller): CallerInfo, v: Viewer) -> Response {
    show(v, address(&caller), None)
}

#[derive(Deserialize)]
pub(super) struct SecurityForm {
    /// `networks`, `totp-policy`, `support-grant` or `support-withdraw`.
    #[serde(default)]
    change: String,
    #[serde(default)]
    networks: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    hours: Option<u32>,
}

/// `POST /security`: one setting, named by the button pressed.
pub(super) async fn change(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    v: Viewer,
    Form(form): Form<SecurityForm>,
) -> Response {
    let service = &state.service;
    let result = match form.change.as_str() {
        "networks" => {
            let cidrs: Vec<String> = form
                .networks
                .split(|c: char| c == '\n' || c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect();
            users::set_admin_networks(service, &v.user, &cidrs)
                .await
                .map(|_| ())
        }
        "totp-policy" => match TotpPolicy::parse(&form.policy) {
            Some(policy) => totp::set_policy(service, &v.user, policy).await.map(|_| ()),
            None => Err(kura_service::ServiceError::invalid(
                "policy must be optional, admins or everyone",
            )),
        },
        "support-grant" => support::set(service, &v.user, Some(form.hours.unwrap_or(0)))
            .await
            .map(|_| ()),
        "support-withdraw" => support::set(service, &v.user, None).await.map(|_| ()),
        _ => Err(kura_service::ServiceError::invalid("unknown change")),
    };
    match result {
        Ok(()) => see_other_with_notice("/security", &v.tr.t("security-saved")),
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(v, address(&caller), Some(outcome))
        }
    }
}
