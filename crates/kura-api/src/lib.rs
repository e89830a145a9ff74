//! The wire contract of Kura's HTTP API: the request and response types and the binary
//! framings that `kura-server` and the agent (`kura-agent`'s remote repository) share, so
//! both sides are compiled against one definition. `docs/protocol.md` describes the routes.
//!
//! It owns shapes and encodings only: no HTTP client or server, no storage, no auth logic.

pub mod agent;
pub mod frames;
pub mod jobs;
pub mod rate;
pub mod vault;

/// The body of every error response: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// The HTTP header carrying a request id, echoed in responses and logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
