//! The runtime side of Tessera workspaces, for services that embed this crate
//! as a workspace runtime.
//!
//! * [`WorkspaceFiles`] / [`SecretFile`] / [`ExpiringSecretFile`]: the
//!   runtime's on-disk secrets in `$CONFIGS_DIR` (default `/configs`):
//!   `.auth_token`, `.platform_inbound_secret` (current), and during a
//!   rotation `.platform_inbound_secret.next` and
//!   `.platform_inbound_secret.previous` (deadline and secret in one file).
//!   All are written atomically with mode 0600, never followed through a
//!   symlink, and refused in a directory other users may write to.
//! * [`register_and_persist`]: calls `RegisterWorkspace`, saves what comes
//!   back, and confirms a rotation's next secret once it is saved;
//!   [`keep_registered`] repeats it on a [`Schedule`].
//! * [`InboundSecrets`] (also behind [`WorkspaceFiles`] as an
//!   [`InboundSecretSource`]): the fail-closed check of the platform's calls
//!   into the runtime (`authorization: Bearer <inbound secret>`) against
//!   every secret valid now; [`inbound_authorized`] is the single-secret
//!   form.
//! * [`InboundAuthLayer`]: a tower layer applying that check to the routes of
//!   an embedding HTTP (e.g. axum) or tonic server
//!   ([`InboundAuthLayer::from_files`]).
//!
//! # Rotation
//!
//! An admin's `RotateInboundSecret` never makes the platform's calls fail,
//! whatever the order of events, because the platform switches secrets only
//! after the runtime holds the new one:
//!
//! 1. The next registration returns the next secret besides the current
//!    one. [`register_and_persist`] saves it to the next file, from where it
//!    is accepted at once, reads it back, and only then confirms: a second
//!    `RegisterWorkspace` carrying its public id. A runtime that could not
//!    save it does not confirm, and the platform goes on with the current
//!    secret.
//! 2. Tessera promotes the confirmed secret to current (the platform reads
//!    it from now on) and answers with the old one as previous, valid until
//!    a deadline (the grace period, 10 minutes by default). Both are saved
//!    (the previous one before the current file is replaced), and the next
//!    file is removed.
//! 3. The previous secret is accepted strictly before its deadline, never
//!    after, even if its file remains; a registration that no longer reports
//!    it (grace over, or ended by a forced rotation) removes its file.
//!
//! Until a rotation is confirmed, Tessera answers with
//! `register_again_within` (half the grace period); [`keep_registered`]
//! honours it, so a rotation after a leak finishes without a restart. A
//! presented bearer that matches nothing cached makes the check re-read the
//! files (at most once per [`REREAD_INTERVAL`]), so processes sharing one
//! configs directory stay coherent.
//!
//! # Recovery
//!
//! The registration token handed to the runtime at provisioning (through its
//! environment) stays valid. A runtime whose config directory comes back
//! empty after a restart therefore recovers by itself: on its next
//! [`register_and_persist`] there is no auth token on disk, so it registers
//! with the registration token and asks for a new auth token (which rotates
//! the lost one), and the response carries the inbound secrets again (the
//! next one, confirmed at once, and the previous one until its deadline),
//! which are written back to disk, where [`InboundAuthLayer`] picks them up.

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
