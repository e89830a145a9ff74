//! Operator tokens: the bootstrap token of a fresh service and further tokens issued by
//! the process owner (quickstart).

use crate::audit::{self, Action, Chain, Entry};
use crate::authz::{Caller, ContractScope, OperatorPrincipal, ProviderRole};
use crate::db::{operators, tenants};
use crate::ids::TenantId;
use crate::secrets::token_hash;
use crate::{Service, ServiceResult};

/// Whether no operator token was ever issued (a fresh service).
pub async fn none_issued(svc: &Service) -> ServiceResult<bool> {
    Ok(operators::count(&svc.db).await? == 0)
}

/// Registers `token` (made with `secrets::new_token(TokenKind::Operator)`) as an
/// operator-admin token named `name`, stored only as a hash. The caller has handed it to
/// the process owner first (a file of mode 0600 in the data directory), so a token is
/// never valid without someone holding it.
pub async fn register(svc: &Service, name: &str, token: &str) -> ServiceResult<()> {
    operators::insert(
        &svc.db,
        &operators::NewOperatorToken {
            operator_id: None,
            name,
            role: ProviderRole::OperatorAdmin,
            token_hash: &token_hash(token),
            expires_ms: None,
        },
        svc.now_ms(),
    )
    .await?;
    Ok(())
}

/// Writes an operator's call to the operator work log and, when the route names an
/// existing tenant, to that tenant's log, so a tenant sees every operator action on it.
pub async fn log_call(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    action: Action,
    path: &str,
    status: &str,
    tenant: Option<TenantId>,
) -> ServiceResult<()> {
    let actor = operator.actor(caller);
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let entry = |chain| Entry {
        chain,
        action,
        target: path,
        result: status,
    };
    audit::record(&mut tx, &actor, now, entry(Chain::operators())).await?;
    if let Some(id) = tenant {
        let scope = ContractScope::new(operator, id);
        if tenants::get(&mut tx, &scope).await?.is_some() {
            audit::record(&mut tx, &actor, now, entry(Chain::tenant(&scope))).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Whether the database answers, for health checks.
pub async fn ping(svc: &Service) -> ServiceResult<()> {
    operators::count(&svc.db).await?;
    Ok(())
}
