//! Operator accounts: created by an operator-admin or by the process owner (the CLI on
//! the server), each with a one-time password that the operator replaces at the first
//! sign-in, when they also enrol TOTP; disabled, enabled and TOTP reset by an
//! operator-admin; and each operator's own password, TOTP, console sessions and API
//! tokens. Every change is in the operator work log.

use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::authz::{Caller, OperatorCredential, OperatorPrincipal, ProviderRole, verify_operator_password};
use crate::db::operators::{self, NewOperator, NewOperatorToken};
use crate::db::{Db, Tx};
use crate::ids::OperatorId;
use crate::model::{ApprovalAction, Language, OperatorRecord, OperatorSessionRecord, OperatorTokenRecord};
use crate::ops::accounts::{check_password_policy, hash_password_blocking, normalize_login, validate_login};
use crate::ops::approvals::{self, Authority, Gated, Held};
use crate::secrets::{TokenKind, new_password, new_token, token_hash};
use crate::{Service, ServiceError, ServiceResult, rfc3339, totp};

/// A new account and its one-time password (shown once).
pub struct CreatedOperator {
    pub operator: OperatorRecord,
    pub password: String,
}

/// Writes one row of the operator work log in `tx`.
pub(crate) async fn log_in(
    tx: &mut Tx,
    actor: &Actor,
    now: i64,
    action: Action,
    target: &str,
    result: &str,
) -> ServiceResult<()> {
    audit::record(
        tx,
        actor,
        now,
        Entry {
            chain: Chain::operators(),
            action,
            target,
            result,
        },
    )
    .await?;
    Ok(())
}

/// What an account is created with.
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    pub login: &'a str,
    pub role: ProviderRole,
    pub email: Option<&'a str>,
    /// The language of the account's mail.
    pub language: Language,
}

/// Creates an account (an operator-admin's request).
pub async fn create(
    svc: &Service,
    by: &OperatorPrincipal,
    caller: &Caller,
    account: NewAccount<'_>,
) -> ServiceResult<CreatedOperator> {
    create_logged(&svc.db, &by.actor(caller), svc.now_ms(), account).await
}

/// Creates an account as the process owner (`kura-server operator create` on the server,
/// which can read the database anyway): how the first operator account comes to be.
pub async fn create_as_owner(
    db: &Db,
    now_ms: i64,
    account: NewAccount<'_>,
) -> ServiceResult<CreatedOperator> {
    let actor = Actor {
        name: "process-owner".to_owned(),
        source: None,
        request_id: String::new(),
    };
    create_logged(db, &actor, now_ms, account).await
}

async fn create_logged(
    db: &Db,
    actor: &Actor,
    now: i64,
    account: NewAccount<'_>,
) -> ServiceResult<CreatedOperator> {
    let NewAccount {
        login,
        role,
        email,
        language,
    } = account;
    let login = normalize_login(login);
    validate_login(&login)?;
    let email = email.map(str::trim).filter(|email| !email.is_empty());
    if let Some(email) = email {
        crate::ops::users::validate_email(email)?;
    }
    let password = new_password();
    let hash = hash_password_blocking(password.clone()).await?;
    let id = OperatorId::generate();
    let mut tx = db.begin().await?;
    operators::create_account(
        &mut tx,
        &NewOperator {
            id: &id,
            login: &login,
            role,
            password_hash: &hash,
            email,
            language,
        },
        now,
    )
    .await?;
    log_in(
        &mut tx,
        actor,
        now,
        Action::OperatorAccountCreate,
        &login,
        &format!("ok: {}, mail in {language}", role.as_str()),
    )
    .await?;
    let operator = operators::account(&mut tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found("the new operator account vanished"))?;
    tx.commit().await?;
    Ok(CreatedOperator { operator, password })
}

/// Every operator account.
pub async fn list(svc: &Service) -> ServiceResult<Vec<OperatorRecord>> {
    Ok(operators::accounts(&svc.db).await?)
}

fn parse_id(id: &str) -> ServiceResult<OperatorId> {
    OperatorId::parse(id).ok_or_else(|| ServiceError::not_found(format!("no operator account {id}")))
}

/// What an operator-admin does to another account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    Disable,
    Enable,
    /// Forget the TOTP secret (a lost device): the operator enrols again at the next sign-in.
    ResetTotp,
}

/// Deletes another operator's account, with its sessions and API tokens; the work log
/// keeps its name. Neither one's own account nor the last enabled operator-admin can be
/// deleted. Under the two-person rule it waits for a second operator-admin instead.
pub async fn delete(
    svc: &Service,
    by: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
) -> ServiceResult<Gated<String>> {
    let authority = Authority {
        operator: by,
        caller,
        approval: None,
    };
    delete_as(svc, &authority, id).await
}

/// [`delete`], asked for directly or carrying out an approved request; answers the
/// deleted account's login ID.
pub(crate) async fn delete_as(
    svc: &Service,
    authority: &Authority<'_>,
    id: &str,
) -> ServiceResult<Gated<String>> {
    let id = parse_id(id)?;
    if authority.operator.account() == Some(&id) {
        return Err(ServiceError::conflict(
            "you cannot delete your own account; ask another operator-admin",
        ));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let account = operators::account(&mut tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no operator account {id}")))?;
    if account.role == ProviderRole::OperatorAdmin
        && account.disabled_ms.is_none()
        && operators::enabled_admins(&mut tx).await? <= 1
    {
        return Err(ServiceError::conflict(
            "this is the last enabled operator-admin account; create another before deleting it",
        ));
    }
    let target = format!("operator {}", account.login);
    let held = Held {
        action: ApprovalAction::DeleteOperator,
        tenant_id: None,
        target: &target,
        params: &id,
        summary: format!(
            "delete the operator account {} ({})",
            account.login,
            account.role.as_str()
        ),
        details: &[
            ("login", account.login.clone()),
            ("role", account.role.as_str().to_owned()),
        ],
    };
    if let Some(waiting) = approvals::hold(svc, &mut tx, now, authority, held).await? {
        tx.commit().await?;
        return Ok(Gated::AwaitingApproval(Box::new(waiting)));
    }
    if !operators::delete_account(&mut tx, &id).await? {
        return Err(ServiceError::not_found(format!("no operator account {id}")));
    }
    let result = format!("deleted ({}){}", account.role.as_str(), authority.result_note());
    log_in(
        &mut tx,
        &authority.operator.actor(authority.caller),
        now,
        Action::OperatorAccountDelete,
        &account.login,
        &result,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(operator = %authority.credited(), deleted = %account.login, "operator account deleted");
    Ok(Gated::Done(account.login))
}

/// Disables, enables or resets the TOTP of another operator's account. Disabling and
/// resetting end the account's sessions; a disabled account's tokens stop working. The
/// last enabled operator-admin cannot be disabled, nor can one's own account.
pub async fn change(
    svc: &Service,
    by: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
    change: AccountChange,
) -> ServiceResult<OperatorRecord> {
    let id = parse_id(id)?;
    if by.account() == Some(&id) {
        return Err(ServiceError::conflict(
            "you cannot disable or reset your own account; ask another operator-admin",
        ));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let account = operators::account(&mut tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no operator account {id}")))?;
    let result = match change {
        AccountChange::Disable => {
            if account.role == ProviderRole::OperatorAdmin
                && account.disabled_ms.is_none()
                && operators::enabled_admins(&mut tx).await? <= 1
            {
                return Err(ServiceError::conflict(
                    "this is the last enabled operator-admin account; create another before disabling it",
                ));
            }
            operators::set_disabled(&mut tx, &id, Some(now)).await?;
            operators::revoke_sessions(&mut tx, &id, None, now).await?;
            "disabled"
        }
        AccountChange::Enable => {
            operators::set_disabled(&mut tx, &id, None).await?;
            "enabled"
        }
        AccountChange::ResetTotp => {
            operators::reset_totp(&mut tx, &id).await?;
            operators::revoke_sessions(&mut tx, &id, None, now).await?;
            "TOTP reset"
        }
    };
    log_in(
        &mut tx,
        &by.actor(caller),
        now,
        Action::OperatorAccountUpdate,
        &account.login,
        result,
    )
    .await?;
    let account = operators::account(&mut tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no operator account {id}")))?;
    tx.commit().await?;
    Ok(account)
}

/// Sets the language of the signed-in operator's mail (the console's language switch
/// does, so mail comes in the language the console is read in). Nothing for a token
/// without an account, or when the language is already that.
pub async fn set_language(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    language: Language,
) -> ServiceResult<()> {
    let Some(id) = operator.account() else {
        return Ok(());
    };
    let mut tx = svc.db.begin().await?;
    let account = operators::account(&mut tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no operator account {id}")))?;
    if account.language == language {
        return Ok(());
    }
    operators::set_language(&mut tx, id, language).await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        svc.now_ms(),
        Action::OperatorAccountUpdate,
        &account.login,
        &format!("mail language: {language}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The signed-in operator's own account.
pub async fn me(svc: &Service, operator: &OperatorPrincipal) -> ServiceResult<Option<OperatorRecord>> {
    match operator.account() {
        Some(id) => Ok(operators::account(&svc.db, id).await?),
        None => Ok(None),
    }
}

/// Sets the operator's own password: the current one (the one-time password at the
/// first sign-in) and a new one that meets the policy.
pub async fn change_password(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    current: String,
    new: String,
) -> ServiceResult<()> {
    let (id, _) = operator.session()?;
    check_password_policy(operator.name(), &new)?;
    if current == new {
        return Err(ServiceError::invalid(
            "the new password must differ from the current one",
        ));
    }
    verify_operator_password(svc, operator, caller, current, Action::OperatorPassword).await?;
    let hash = hash_password_blocking(new).await?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    operators::set_password(&mut tx, id, &hash, now).await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        now,
        Action::OperatorPassword,
        operator.name(),
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A TOTP secret handed out for enrolment (shown once) and its `otpauth://` URI.
pub struct OperatorEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// The account name an authenticator app shows for an operator (`Kura: LOGIN@console`),
/// apart from a tenant account of the same login ID.
pub fn otpauth_label(login: &str) -> String {
    format!("{login}@console")
}

/// Starts TOTP enrolment (at the first sign-in, or after a reset).
pub async fn enroll_totp(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
) -> ServiceResult<OperatorEnrolment> {
    let (id, _) = operator.session()?;
    let (active, _, _) = operators::totp_state(&svc.db, id).await?;
    if active.is_some() {
        return Err(ServiceError::conflict(
            "TOTP is already on for this account; an operator-admin can reset it if the device is lost",
        ));
    }
    let secret = totp::new_secret();
    let sealed = svc.key.seal(&secret, &crate::authz::operator_totp_context(id));
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    operators::set_totp_pending(&mut tx, id, &sealed).await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        now,
        Action::OperatorTotpEnroll,
        operator.name(),
        "started",
    )
    .await?;
    tx.commit().await?;
    Ok(OperatorEnrolment {
        otpauth_uri: totp::otpauth_uri(&secret, &otpauth_label(operator.name())),
        secret,
    })
}

/// Finishes TOTP enrolment with a current code.
pub async fn confirm_totp(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    code: &str,
) -> ServiceResult<()> {
    let (id, _) = operator.session()?;
    let now = svc.now_ms();
    let not_started = || {
        ServiceError::conflict(
            "no TOTP enrolment is in progress; start with POST /api/v1/operator/account/totp/enroll",
        )
    };
    let (_, pending, _) = operators::totp_state(&svc.db, id).await?;
    let pending = pending.ok_or_else(not_started)?;
    let secret = svc
        .key
        .open(&pending, &crate::authz::operator_totp_context(id))
        .map_err(|err| ServiceError::internal("cannot open a pending TOTP secret", &err))?;
    let step = totp::matching_step(&secret, code.trim(), now, None).ok_or_else(|| {
        ServiceError::invalid(
            "the code does not match: check that the device's clock is right and enter the current code",
        )
    })?;
    let mut tx = svc.db.begin().await?;
    if !operators::activate_totp(&mut tx, id, step).await? {
        return Err(not_started());
    }
    log_in(
        &mut tx,
        &operator.actor(caller),
        now,
        Action::OperatorTotpEnable,
        operator.name(),
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The operator's live console sessions.
pub async fn sessions(
    svc: &Service,
    operator: &OperatorPrincipal,
) -> ServiceResult<Vec<OperatorSessionRecord>> {
    let (id, _) = operator.session()?;
    Ok(operators::sessions(&svc.db, id).await?)
}

/// Ends one of the operator's own sessions (`None`: the current one, signing out).
pub async fn end_session(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    session: Option<&str>,
) -> ServiceResult<()> {
    let (id, current) = operator.session()?;
    let now = svc.now_ms();
    let target = session.unwrap_or(current);
    let mut tx = svc.db.begin().await?;
    if operators::revoke_sessions(&mut tx, id, Some(target), now).await? == 0 {
        return Err(ServiceError::not_found(format!(
            "you have no live session {target}"
        )));
    }
    let (action, what) = match session {
        None => (Action::OperatorLogout, operator.name().to_owned()),
        Some(target) => (Action::OperatorSessionRevoke, target.to_owned()),
    };
    log_in(&mut tx, &operator.actor(caller), now, action, &what, "ok").await?;
    tx.commit().await?;
    Ok(())
}

/// The longest an operator token may live.
pub const MAX_TOKEN_DAYS: u32 = 365;

/// A token just issued: shown once.
pub struct IssuedOperatorToken {
    pub record: OperatorTokenRecord,
    pub token: String,
}

/// Issues an API token of the operator's own (for automation), with a role no higher
/// than theirs, valid for `days` (1–365). Only a console session may issue one.
pub async fn issue_token(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    name: &str,
    role: ProviderRole,
    days: u32,
) -> ServiceResult<IssuedOperatorToken> {
    let (id, _) = operator.session()?;
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(ServiceError::invalid(
            "name: give the token a name of 1 to 64 characters (what uses it)",
        ));
    }
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ServiceError::invalid(format!(
            "days: a token lives 1 to {MAX_TOKEN_DAYS} days"
        )));
    }
    if !operator.role().covers(role) {
        return Err(ServiceError::forbidden(format!(
            "role: your role ({}) cannot issue a token with the role {}",
            operator.role().as_str(),
            role.as_str()
        )));
    }
    let now = svc.now_ms();
    let expires = now.saturating_add(i64::from(days) * 86_400_000);
    let token = new_token(TokenKind::Operator);
    let mut tx = svc.db.begin().await?;
    let token_id = operators::insert(
        &mut tx,
        &NewOperatorToken {
            operator_id: Some(id),
            name,
            role,
            token_hash: &token_hash(&token),
            expires_ms: Some(expires),
        },
        now,
    )
    .await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        now,
        Action::OperatorTokenCreate,
        name,
        &format!("ok: {}, expires {}", role.as_str(), rfc3339(expires)),
    )
    .await?;
    let record = operators::tokens(&mut tx, Some(id))
        .await?
        .into_iter()
        .find(|record| record.id == token_id)
        .ok_or_else(|| ServiceError::not_found("the new token vanished"))?;
    tx.commit().await?;
    Ok(IssuedOperatorToken { record, token })
}

/// Operator tokens: an operator-admin sees every one, an operator their own.
pub async fn tokens(svc: &Service, operator: &OperatorPrincipal) -> ServiceResult<Vec<OperatorTokenRecord>> {
    let owner = owner_filter(operator)?;
    Ok(operators::tokens(&svc.db, owner).await?)
}

/// Whose tokens the operator may see and revoke: anyone's for an operator-admin.
fn owner_filter(operator: &OperatorPrincipal) -> ServiceResult<Option<&OperatorId>> {
    if operator.role() == ProviderRole::OperatorAdmin {
        return Ok(None);
    }
    operator.account().map(Some).ok_or_else(|| {
        ServiceError::forbidden("this token belongs to no operator account, so it has no tokens of its own")
    })
}

/// Revokes a token: one's own, or as an operator-admin anyone's (a bootstrap token too).
pub async fn revoke_token(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    token_id: &str,
) -> ServiceResult<()> {
    let owner = owner_filter(operator)?;
    if operator.credential() == &OperatorCredential::Token(token_id.to_owned()) {
        return Err(ServiceError::conflict(
            "this request is authenticated with that token; revoke it with another credential",
        ));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if !operators::revoke_token(&mut tx, token_id, owner, now).await? {
        return Err(ServiceError::not_found(format!(
            "no live operator token {token_id} that you may revoke"
        )));
    }
    log_in(
        &mut tx,
        &operator.actor(caller),
        now,
        Action::OperatorTokenRevoke,
        token_id,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
