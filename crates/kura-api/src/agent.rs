//! Agent registration: a one-time token from the portal or operator becomes a machine
//! record and the agent's own revocable credential.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/agents/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Register {
    /// The one-time registration token.
    pub token: String,
    /// The machine's name as the tenant will see it.
    pub name: String,
}

/// Answer to [`Register`]. The credential is shown once; the server keeps only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub machine_id: String,
    pub tenant_id: String,
    pub credential: String,
}
