//! The runtime side of Tessera workspaces, for services that embed this crate
//! as a workspace runtime.
//!
//! * [`WorkspaceFiles`] / [`SecretFile`]: the runtime's on-disk secrets,
//!   `$CONFIGS_DIR/.platform_inbound_secret` and `$CONFIGS_DIR/.auth_token`
//!   (default directory `/configs`), written atomically with mode 0600,
//!   never followed through a symlink, and refused in a directory other
//!   users may write to.
//! * [`register_and_persist`]: calls `RegisterWorkspace` and saves what comes
//!   back.
//! * [`inbound_authorized`]: the fail-closed check of the platform's calls
//!   into the runtime (`authorization: Bearer <inbound secret>`).
//! * [`InboundAuthLayer`]: a tower layer applying that check to the routes of
//!   an embedding HTTP (e.g. axum) or tonic server.
//!
//! # Recovery
//!
//! The registration token handed to the runtime at provisioning (through its
//! environment) stays valid. A runtime whose config directory comes back
//! empty after a restart therefore recovers by itself: on its next
//! [`register_and_persist`] there is no auth token on disk, so it registers
//! with the registration token and asks for a new auth token (which rotates
//! the lost one), and the response carries the inbound secret again, which is
//! written back to disk, where [`InboundAuthLayer`] picks it up.

mod accepted;
mod disk;
mod expiring;
mod files;
mod inbound;
mod keep;
mod layer;
mod register;
mod rotation;
mod secret_file;

pub use accepted::{InboundSecrets, REREAD_INTERVAL};
pub use expiring::{ExpiringSecret, ExpiringSecretFile};
pub use files::{
    AUTH_TOKEN_FILE, CONFIGS_DIR_ENV, DEFAULT_CONFIGS_DIR, INBOUND_SECRET_FILE,
    NEXT_INBOUND_SECRET_FILE, PREVIOUS_INBOUND_SECRET_FILE, WorkspaceFiles,
};
pub use inbound::{InboundSecretSource, inbound_authorized, inbound_authorized_any};
pub use keep::{Schedule, keep_registered};
pub use layer::{InboundAuth, InboundAuthLayer, ResponseFuture};
pub use register::{Confirmation, RegisterError, Registration, register_and_persist};
pub use secret_file::{LoadError, SaveError, SecretFile};
