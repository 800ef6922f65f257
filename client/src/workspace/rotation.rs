//! Saving what `RegisterWorkspace` returned, in an order that never leaves a
//! secret the platform may present out of every file.

use std::time::{Duration, SystemTime};

use tonic::Code;

use super::{
    Confirmation, ExpiringSecret, RegisterError, Registration, SaveError, SecretFile,
    WorkspaceFiles,
};
use crate::Secret;
use crate::pb::RegisterWorkspaceResponse;
use crate::token::{TokenKind, credential_id};

/// A registration's result being built from one or two responses.
pub(super) struct Outcome {
    registration: Registration,
    failure: Option<SaveError>,
}

impl Outcome {
    pub(super) fn new(stored_token: Option<Secret>, used_registration_token: bool) -> Self {
        Self {
            registration: Registration {
                auth_token: stored_token,
                auth_token_issued: false,
                used_registration_token,
                inbound_secret: None,
                registered_at: None,
                next_inbound_secret_id: None,
                previous_valid_until: None,
                register_again_within: None,
                confirmation: Confirmation::NotNeeded,
            },
            failure: None,
        }
    }

    pub(super) fn auth_token(&self) -> Option<&Secret> {
        self.registration.auth_token.as_ref()
    }

    /// Saves `response` and records it. Returns the id to confirm when it
    /// offered a next secret that was saved and reads back equal (computed
    /// from what is on disk, not taken from the response).
    pub(super) fn apply(
        &mut self,
        files: &WorkspaceFiles,
        response: RegisterWorkspaceResponse,
    ) -> Option<String> {
        // An empty string is treated like an absent field: it would be no secret.
        let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty()).map(Secret::new);
        if let Some(token) = non_empty(response.auth_token) {
            // Saved independently of the inbound secrets: each file is
            // useful on its own.
            self.note(files.auth_token().save(&token));
            self.registration.auth_token = Some(token);
            self.registration.auth_token_issued = true;
        }
        let current = non_empty(response.platform_inbound_secret);
        let next = non_empty(response.next_platform_inbound_secret);
        let previous = non_empty(response.previous_platform_inbound_secret).and_then(|secret| {
            // Without a deadline it would be accepted forever: not at all.
            let valid_until = SystemTime::try_from(response.previous_valid_until?).ok()?;
            Some(ExpiringSecret {
                secret,
                valid_until,
            })
        });
        let r = &mut self.registration;
        r.registered_at = response.registered_at;
        r.next_inbound_secret_id = (next.is_some() && !response.next_inbound_secret_id.is_empty())
            .then_some(response.next_inbound_secret_id);
        r.previous_valid_until = previous.as_ref().map(|p| p.valid_until);
        r.register_again_within = response
            .register_again_within
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero());
        r.inbound_secret.clone_from(&current);
        let current = current?;
        let held = self.save_inbound(files, &current, next.as_ref(), previous.as_ref());
        if next.is_some() && held.is_none() {
            self.registration.confirmation = Confirmation::NotSent;
        }
        held
    }

    /// The order matters to a concurrent check, which reads next, current,
    /// previous: a secret is written to its new file before it leaves its
    /// old one (the old current into previous before current is replaced;
    /// a promoted next into current before the next file goes), and nothing
    /// is removed after a failed write, so a failure leaves more secrets
    /// accepted, never fewer (a previous one still only until its deadline).
    fn save_inbound(
        &mut self,
        files: &WorkspaceFiles,
        current: &Secret,
        next: Option<&Secret>,
        previous: Option<&ExpiringSecret>,
    ) -> Option<String> {
        let mut inbound_ok = true;
        let mut held = None;
        if let Some(next) = next {
            let saved = files.next_inbound_secret().save(next);
            if saved.is_ok() {
                held = read_back_id(files.next_inbound_secret(), next);
            }
            inbound_ok &= self.note(saved);
        }
        let previous_saved = previous.is_none_or(|previous| {
            let file = files.previous_inbound_secret();
            self.note(file.save(&previous.secret, previous.valid_until))
        });
        // Replacing current before its old value is safe in previous could
        // drop the secret the platform still presents.
        inbound_ok &= previous_saved && self.note(files.inbound_secret().save(current));
        if inbound_ok {
            // A grace that ended (or was ended by a forced rotation): the old
            // secret must stop working. A next no longer reported was either
            // promoted (it is current now, saved above) or replaced while
            // unconfirmed (the platform never had it).
            if previous.is_none() {
                self.note(files.previous_inbound_secret().remove());
            }
            if next.is_none() {
                self.note(files.next_inbound_secret().remove());
            }
        }
        held
    }

    /// After the confirming call was answered and applied.
    pub(super) fn confirmed(&mut self, held: &str) {
        let promoted = self
            .registration
            .inbound_secret
            .as_ref()
            .is_some_and(|current| inbound_id(current) == held);
        self.registration.confirmation = if promoted {
            Confirmation::Promoted
        } else {
            Confirmation::NotPromoted
        };
    }

    pub(super) fn confirmation_failed(&mut self, code: Code) {
        self.registration.confirmation = Confirmation::Failed(code);
    }

    pub(super) fn finish(self) -> Result<Registration, RegisterError> {
        match self.failure {
            None => Ok(self.registration),
            Some(source) => Err(RegisterError::Persist {
                source,
                registration: Box::new(self.registration),
            }),
        }
    }

    /// Keeps the first failure; true when `result` is a success.
    fn note(&mut self, result: Result<(), SaveError>) -> bool {
        match result {
            Ok(()) => true,
            Err(err) => {
                self.failure.get_or_insert(err);
                false
            }
        }
    }
}

/// The public id of the secret now in `file`, if it is `expected`: read from
/// disk (not the cache), so what is confirmed is what a restarted runtime
/// would find.
fn read_back_id(file: &SecretFile, expected: &Secret) -> Option<String> {
    file.reset_cache();
    let stored = file.try_load().ok().flatten()?;
    (stored == *expected).then(|| inbound_id(&stored))
}

fn inbound_id(secret: &Secret) -> String {
    credential_id(TokenKind::WorkspaceInbound.tag(), secret.expose())
}
