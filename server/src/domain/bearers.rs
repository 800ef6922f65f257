//! VerifyBearer: a service asks who a token it was handed belongs to.

use std::sync::Arc;

use tessera_client::token;

use super::audit::{Auditor, Event};
use super::error::Result;
use super::principal::{Caller, Principal};
use crate::auth::verify::{Verifier, failure_reason};

/// The VerifyBearer RPC.
pub(crate) struct Bearers {
    verifier: Arc<Verifier>,
    audit: Auditor,
}

impl Bearers {
    pub(crate) fn new(verifier: Arc<Verifier>, audit: Auditor) -> Self {
        Self { verifier, audit }
    }

    /// The principal `bearer` authenticates. A refusal is audited with the
    /// relaying service as actor and the token's public id (when it has
    /// one) as resource.
    pub(crate) async fn verify(&self, caller: &Caller, bearer: &str) -> Result<Principal> {
        let result = self.verifier.verify(bearer).await;
        if let Err(err) = &result {
            let presented = token::credential_id_of(bearer).unwrap_or_default();
            let event = Event {
                action: "bearer.verify",
                resource: &presented,
                outcome: failure_reason(err),
            };
            self.audit.by(caller, event).await;
        }
        result
    }
}
