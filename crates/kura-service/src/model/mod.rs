//! Records of the service as the operations hand them around: what is stored, without
//! the SQL that stores it (`db/`) or the JSON that shows it (`kura-server`). Times are
//! milliseconds since the Unix epoch (UTC).

mod event;
mod machine;
mod tenant;
mod user;

pub use event::{ChainHead, EventRecord, NewEvent};
pub use machine::{AgentIdentity, MachineRecord, NewMachine, RegistrationOutcome};
pub use tenant::{NewTenant, TenantRecord, TenantStatus, TenantUpdate};
pub use user::{
    ApiTokenIdentity, ApiTokenRecord, LoginCandidate, LoginFailures, NewApiToken, NewTenantUser,
    NewUserSession, OperatorTokenRecord, SessionIdentity, TenantUserRecord, TotpState, UserSessionRecord,
    UserUpdate,
};
