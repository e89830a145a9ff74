//! Provider staff: `operator_accounts`, their `operator_sessions` and `operator_tokens`
//! (stored by hash), and the service's shared settings.

use super::{DbResult, Query, Target, Tx};
use crate::authz::ProviderRole;
use crate::ids::OperatorId;
use crate::model::{
    Language, OperatorCandidate, OperatorRecord, OperatorSessionIdentity, OperatorSessionRecord,
    OperatorTokenIdentity, OperatorTokenRecord,
};
use crate::secrets::random_hex;

/// Number of operator tokens ever issued (revoked ones included).
pub async fn count<'c>(on: impl Target<'c>) -> DbResult<u64> {
    let (count,): (i64,) = Query::service("SELECT COUNT(*) FROM operator_tokens")
        .fetch_one(on)
        .await?;
    Ok(count.unsigned_abs())
}

/// A token to store: its owner (none for a fresh service's), name, role and expiry.
pub struct NewOperatorToken<'a> {
    pub operator_id: Option<&'a OperatorId>,
    pub name: &'a str,
    pub role: ProviderRole,
    pub token_hash: &'a str,
    pub expires_ms: Option<i64>,
}

/// Stores a new operator token by its hash; answers its id.
pub async fn insert<'c>(on: impl Target<'c>, token: &NewOperatorToken<'_>, now_ms: i64) -> DbResult<String> {
    let id = random_hex(16);
    Query::service(
        "INSERT INTO operator_tokens (id, name, token_hash, created_ms, role, operator_id, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(token.name)
    .bind(token.token_hash)
    .bind(now_ms)
    .bind(token.role.as_str())
    .bind(token.operator_id.map(OperatorId::as_str))
    .bind(token.expires_ms)
    .execute(on)
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    operator_id: Option<String>,
    owner_login: Option<String>,
    created_ms: i64,
    expires_ms: Option<i64>,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
    owner_role: Option<String>,
    owner_disabled_ms: Option<i64>,
}

impl TokenRow {
    fn into_identity(self) -> DbResult<OperatorTokenIdentity> {
        Ok(OperatorTokenIdentity {
            owner_role: self.owner_role.as_deref().map(str::parse).transpose()?,
            owner_disabled: self.owner_disabled_ms.is_some(),
            token: OperatorTokenRecord {
                id: self.id,
                name: self.name,
                role: self.role.parse()?,
                operator_id: self.operator_id.map(OperatorId::from_db),
                owner_login: self.owner_login,
                created_ms: self.created_ms,
                expires_ms: self.expires_ms,
                last_used_ms: self.last_used_ms,
                revoked_ms: self.revoked_ms,
            },
        })
    }
}

macro_rules! select_tokens {
    () => {
        "SELECT t.id, t.name, t.role, t.operator_id, a.login AS owner_login, t.created_ms, t.expires_ms, \
         t.last_used_ms, t.revoked_ms, a.role AS owner_role, a.disabled_ms AS owner_disabled_ms \
         FROM operator_tokens t LEFT JOIN operator_accounts a ON a.id = t.operator_id"
    };
}

/// The unrevoked operator token with this hash, with its owner's state.
pub async fn by_hash<'c>(on: impl Target<'c>, token_hash: &str) -> DbResult<Option<OperatorTokenIdentity>> {
    let row: Option<TokenRow> = Query::service(concat!(
        select_tokens!(),
        " WHERE t.token_hash = $1 AND t.revoked_ms IS NULL"
    ))
    .bind(token_hash)
    .fetch_optional(on)
    .await?;
    row.map(TokenRow::into_identity).transpose()
}

/// Every operator token (revoked ones included), or one operator's, newest first.
pub async fn tokens<'c>(
    on: impl Target<'c>,
    owner: Option<&OperatorId>,
) -> DbResult<Vec<OperatorTokenRecord>> {
    let rows: Vec<TokenRow> = Query::service(concat!(
        select_tokens!(),
        " WHERE ($1 IS NULL OR t.operator_id = $1) ORDER BY t.created_ms DESC, t.id"
    ))
    .bind(owner.map(OperatorId::as_str))
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|row| row.into_identity().map(|identity| identity.token))
        .collect()
}

/// Notes a token's use (at most once a minute, by the caller).
pub async fn touch_token<'c>(on: impl Target<'c>, id: &str, now_ms: i64) -> DbResult<()> {
    Query::service("UPDATE operator_tokens SET last_used_ms = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(on)
        .await?;
    Ok(())
}

/// Revokes a live token (of `owner` only, when given). `false` if there is none.
pub async fn revoke_token<'c>(
    on: impl Target<'c>,
    id: &str,
    owner: Option<&OperatorId>,
    now_ms: i64,
) -> DbResult<bool> {
    let revoked = Query::service(
        "UPDATE operator_tokens SET revoked_ms = $3 \
         WHERE id = $1 AND ($2 IS NULL OR operator_id = $2) AND revoked_ms IS NULL",
    )
    .bind(id)
    .bind(owner.map(OperatorId::as_str))
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(revoked == 1)
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    login: String,
    role: String,
    email: Option<String>,
    language: String,
    totp_enrolled: bool,
    password_changed: bool,
    created_ms: i64,
    disabled_ms: Option<i64>,
}

impl AccountRow {
    fn into_record(self) -> DbResult<OperatorRecord> {
        Ok(OperatorRecord {
            id: OperatorId::from_db(self.id),
            login: self.login,
            role: self.role.parse()?,
            email: self.email,
            language: self.language.parse()?,
            totp_enrolled: self.totp_enrolled,
            password_changed: self.password_changed,
            created_ms: self.created_ms,
            disabled_ms: self.disabled_ms,
        })
    }
}

macro_rules! select_accounts {
    () => {
        "SELECT id, login, role, email, language, totp_secret IS NOT NULL AS totp_enrolled, \
         password_changed_ms IS NOT NULL AS password_changed, created_ms, disabled_ms \
         FROM operator_accounts"
    };
}

/// A new operator account.
pub struct NewOperator<'a> {
    pub id: &'a OperatorId,
    pub login: &'a str,
    pub role: ProviderRole,
    pub password_hash: &'a str,
    pub email: Option<&'a str>,
    pub language: Language,
}

/// Stores a new operator account.
pub async fn create_account<'c>(on: impl Target<'c>, account: &NewOperator<'_>, now_ms: i64) -> DbResult<()> {
    Query::service(
        "INSERT INTO operator_accounts (id, login, role, password_hash, email, created_ms, language) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account.id.as_str())
    .bind(account.login)
    .bind(account.role.as_str())
    .bind(account.password_hash)
    .bind(account.email)
    .bind(now_ms)
    .bind(account.language.as_str())
    .execute(on)
    .await
    .map_err(|err| super::map_unique_violation(err, "", account.login))?;
    Ok(())
}

/// Every operator account, by login ID.
pub async fn accounts<'c>(on: impl Target<'c>) -> DbResult<Vec<OperatorRecord>> {
    let rows: Vec<AccountRow> = Query::service(concat!(select_accounts!(), " ORDER BY login"))
        .fetch_all(on)
        .await?;
    rows.into_iter().map(AccountRow::into_record).collect()
}

/// One operator account.
pub async fn account<'c>(on: impl Target<'c>, id: &OperatorId) -> DbResult<Option<OperatorRecord>> {
    let row: Option<AccountRow> = Query::service(concat!(select_accounts!(), " WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(on)
        .await?;
    row.map(AccountRow::into_record).transpose()
}

/// Sets the language of an account's mail.
pub async fn set_language<'c>(on: impl Target<'c>, id: &OperatorId, language: Language) -> DbResult<()> {
    Query::service("UPDATE operator_accounts SET language = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(language.as_str())
        .execute(on)
        .await?;
    Ok(())
}

/// An enabled account with a mail address, as its mail is addressed.
pub struct OperatorMailbox {
    pub id: OperatorId,
    pub login: String,
    pub email: String,
    pub language: Language,
}

/// The mailboxes of the enabled accounts that have an address, optionally one role's.
pub async fn mailboxes<'c>(
    on: impl Target<'c>,
    role: Option<ProviderRole>,
) -> DbResult<Vec<OperatorMailbox>> {
    let rows: Vec<(String, String, String, String)> = Query::service(
        "SELECT id, login, email, language FROM operator_accounts \
         WHERE disabled_ms IS NULL AND email IS NOT NULL AND ($1 IS NULL OR role = $1) ORDER BY login",
    )
    .bind(role.map(ProviderRole::as_str))
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|(id, login, email, language)| {
            Ok(OperatorMailbox {
                id: OperatorId::from_db(id),
                login,
                email,
                language: language.parse()?,
            })
        })
        .collect()
}

/// Deletes an account with its sessions and API tokens (the work log keeps its name).
pub async fn delete_account(tx: &mut Tx, id: &OperatorId) -> DbResult<bool> {
    for sql in [
        "DELETE FROM operator_sessions WHERE operator_id = $1",
        "DELETE FROM operator_tokens WHERE operator_id = $1",
    ] {
        Query::service(sql).bind(id.as_str()).execute(&mut *tx).await?;
    }
    let deleted = Query::service("DELETE FROM operator_accounts WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(deleted == 1)
}

/// How many operator-admin accounts are enabled.
pub async fn enabled_admins<'c>(on: impl Target<'c>) -> DbResult<u64> {
    let (count,): (i64,) = Query::service(
        "SELECT COUNT(*) FROM operator_accounts WHERE role = 'operator-admin' AND disabled_ms IS NULL",
    )
    .fetch_one(on)
    .await?;
    Ok(count.unsigned_abs())
}

/// What a sign-in with this login ID is checked against.
pub async fn candidate<'c>(on: impl Target<'c>, login: &str) -> DbResult<Option<OperatorCandidate>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        login: String,
        password_hash: String,
        role: String,
        disabled_ms: Option<i64>,
        password_changed_ms: Option<i64>,
        totp_secret: Option<String>,
        totp_last_step: Option<i64>,
    }
    let row: Option<Row> = Query::service(
        "SELECT id, login, password_hash, role, disabled_ms, password_changed_ms, totp_secret, totp_last_step \
         FROM operator_accounts WHERE login = $1",
    )
    .bind(login)
    .fetch_optional(on)
    .await?;
    row.map(|row| {
        Ok(OperatorCandidate {
            id: OperatorId::from_db(row.id),
            login: row.login,
            password_hash: row.password_hash,
            role: row.role.parse()?,
            disabled: row.disabled_ms.is_some(),
            password_changed: row.password_changed_ms.is_some(),
            totp_secret: row.totp_secret,
            totp_last_step: row.totp_last_step,
        })
    })
    .transpose()
}

/// The stored password hash of an account.
pub async fn password_hash<'c>(on: impl Target<'c>, id: &OperatorId) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::service("SELECT password_hash FROM operator_accounts WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(hash,)| hash))
}

/// Sets the operator's own password (the one-time password is then spent).
pub async fn set_password<'c>(on: impl Target<'c>, id: &OperatorId, hash: &str, now_ms: i64) -> DbResult<()> {
    Query::service("UPDATE operator_accounts SET password_hash = $2, password_changed_ms = $3 WHERE id = $1")
        .bind(id.as_str())
        .bind(hash)
        .bind(now_ms)
        .execute(on)
        .await?;
    Ok(())
}

/// Disables (`Some(now)`) or enables (`None`) an account. `false` if there is none.
pub async fn set_disabled<'c>(
    on: impl Target<'c>,
    id: &OperatorId,
    disabled_ms: Option<i64>,
) -> DbResult<bool> {
    let changed = Query::service("UPDATE operator_accounts SET disabled_ms = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(disabled_ms)
        .execute(on)
        .await?;
    Ok(changed == 1)
}

/// The active and pending TOTP secrets (sealed) and the last step used.
pub async fn totp_state<'c>(
    on: impl Target<'c>,
    id: &OperatorId,
) -> DbResult<(Option<String>, Option<String>, Option<i64>)> {
    let row: Option<(Option<String>, Option<String>, Option<i64>)> = Query::service(
        "SELECT totp_secret, totp_pending, totp_last_step FROM operator_accounts WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(on)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Keeps a secret being enrolled (sealed).
pub async fn set_totp_pending<'c>(on: impl Target<'c>, id: &OperatorId, sealed: &str) -> DbResult<()> {
    Query::service("UPDATE operator_accounts SET totp_pending = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(sealed)
        .execute(on)
        .await?;
    Ok(())
}

/// Makes the pending secret the active one, the step of its first code used.
pub async fn activate_totp<'c>(on: impl Target<'c>, id: &OperatorId, step: i64) -> DbResult<bool> {
    let changed = Query::service(
        "UPDATE operator_accounts SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $2 \
         WHERE id = $1 AND totp_pending IS NOT NULL",
    )
    .bind(id.as_str())
    .bind(step)
    .execute(on)
    .await?;
    Ok(changed == 1)
}

/// Uses a TOTP step: `false` if it (or a later one) was used already, so a code works once.
pub async fn use_totp_step<'c>(on: impl Target<'c>, id: &OperatorId, step: i64) -> DbResult<bool> {
    let changed = Query::service(
        "UPDATE operator_accounts SET totp_last_step = $2 \
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(id.as_str())
    .bind(step)
    .execute(on)
    .await?;
    Ok(changed == 1)
}

/// Forgets an operator's TOTP: they enrol again at their next sign-in.
pub async fn reset_totp<'c>(on: impl Target<'c>, id: &OperatorId) -> DbResult<bool> {
    let changed = Query::service(
        "UPDATE operator_accounts SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
         WHERE id = $1",
    )
    .bind(id.as_str())
    .execute(on)
    .await?;
    Ok(changed == 1)
}

/// A new operator session, by the hashes of its cookie and CSRF token.
pub struct NewOperatorSession<'a> {
    pub id: &'a str,
    pub operator_id: &'a OperatorId,
    pub session_hash: &'a str,
    pub csrf_hash: &'a str,
    pub source: &'a str,
}

/// Stores a new operator session.
pub async fn create_session<'c>(
    on: impl Target<'c>,
    session: &NewOperatorSession<'_>,
    now_ms: i64,
) -> DbResult<()> {
    Query::service(
        "INSERT INTO operator_sessions (id, operator_id, session_hash, csrf_hash, source, created_ms, \
         last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(session.id)
    .bind(session.operator_id.as_str())
    .bind(session.session_hash)
    .bind(session.csrf_hash)
    .bind(session.source)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// The session whose cookie has this hash, revoked or not, with its owner's state.
pub async fn session<'c>(
    on: impl Target<'c>,
    session_hash: &str,
) -> DbResult<Option<OperatorSessionIdentity>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        operator_id: String,
        login: String,
        role: String,
        csrf_hash: String,
        created_ms: i64,
        last_seen_ms: i64,
        revoked_ms: Option<i64>,
        disabled_ms: Option<i64>,
        totp_enrolled: bool,
        password_changed: bool,
    }
    let row: Option<Row> = Query::service(
        "SELECT s.id, s.operator_id, a.login, a.role, s.csrf_hash, s.created_ms, s.last_seen_ms, \
         s.revoked_ms, a.disabled_ms, a.totp_secret IS NOT NULL AS totp_enrolled, \
         a.password_changed_ms IS NOT NULL AS password_changed \
         FROM operator_sessions s JOIN operator_accounts a ON a.id = s.operator_id WHERE s.session_hash = $1",
    )
    .bind(session_hash)
    .fetch_optional(on)
    .await?;
    row.map(|row| {
        Ok(OperatorSessionIdentity {
            session_id: row.id,
            operator_id: OperatorId::from_db(row.operator_id),
            login: row.login,
            role: row.role.parse()?,
            csrf_hash: row.csrf_hash,
            created_ms: row.created_ms,
            last_seen_ms: row.last_seen_ms,
            revoked: row.revoked_ms.is_some(),
            disabled: row.disabled_ms.is_some(),
            totp_enrolled: row.totp_enrolled,
            password_changed: row.password_changed,
        })
    })
    .transpose()
}

/// Records activity on a session (for the idle timeout).
pub async fn touch_session<'c>(on: impl Target<'c>, id: &str, now_ms: i64) -> DbResult<()> {
    Query::service("UPDATE operator_sessions SET last_seen_ms = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(on)
        .await?;
    Ok(())
}

/// An operator's live sessions, newest first.
pub async fn sessions<'c>(on: impl Target<'c>, id: &OperatorId) -> DbResult<Vec<OperatorSessionRecord>> {
    let rows: Vec<(String, String, i64, i64)> = Query::service(
        "SELECT id, source, created_ms, last_seen_ms FROM operator_sessions \
         WHERE operator_id = $1 AND revoked_ms IS NULL ORDER BY created_ms DESC, id",
    )
    .bind(id.as_str())
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, source, created_ms, last_seen_ms)| OperatorSessionRecord {
            id,
            source,
            created_ms,
            last_seen_ms,
        })
        .collect())
}

/// Ends one session of an operator (`Some(id)`) or all of them. Answers how many ended.
pub async fn revoke_sessions<'c>(
    on: impl Target<'c>,
    operator: &OperatorId,
    session: Option<&str>,
    now_ms: i64,
) -> DbResult<u64> {
    Query::service(
        "UPDATE operator_sessions SET revoked_ms = $3 \
         WHERE operator_id = $1 AND ($2 IS NULL OR id = $2) AND revoked_ms IS NULL",
    )
    .bind(operator.as_str())
    .bind(session)
    .bind(now_ms)
    .execute(on)
    .await
}

/// Deletes operator sessions that ended; answers how many.
pub async fn delete_ended_sessions<'c>(
    on: impl Target<'c>,
    idle_before_ms: i64,
    begun_before_ms: i64,
) -> DbResult<u64> {
    Query::service(
        "DELETE FROM operator_sessions WHERE revoked_ms IS NOT NULL OR last_seen_ms < $1 OR created_ms < $2",
    )
    .bind(idle_before_ms)
    .bind(begun_before_ms)
    .execute(on)
    .await
}

/// A shared setting of the service, if set.
pub async fn setting<'c>(on: impl Target<'c>, name: &str) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::service("SELECT value FROM service_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(value,)| value))
}

/// Sets a shared setting unless it is set already (the first server to start decides).
pub async fn init_setting<'c>(on: impl Target<'c>, name: &str, value: &str) -> DbResult<()> {
    Query::service(
        "INSERT INTO service_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(value)
    .execute(on)
    .await?;
    Ok(())
}
