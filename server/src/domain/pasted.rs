//! Secrets pasted where an id belongs: a leaked Tessera token or a
//! configured service secret sent to a revocation as its "id". They must
//! not be stored, logged or echoed, so they are refused naming only their
//! public id, and an audit entry records that id in their place.

use std::sync::Arc;

use super::error::{Error, Result};
use super::text;
use crate::auth::verify::SharedSecrets;

/// Tells pasted secrets apart from ids.
pub(crate) struct PastedSecrets {
    services: Arc<SharedSecrets>,
}

impl PastedSecrets {
    /// Checks against the configured service secrets as they stand after
    /// the last reload.
    pub(crate) fn new(services: Arc<SharedSecrets>) -> Self {
        Self { services }
    }

    /// Refuses `value` of `field` when it holds a Tessera token or is a
    /// configured service secret, naming its public id.
    pub(crate) fn refuse(&self, field: &'static str, value: &str) -> Result<()> {
        text::not_a_token(field, value)?;
        match self.service_id(value) {
            Some(id) => Err(Error::invalid(
                field,
                format!("a service secret was sent, not an id; its public id is {id}"),
            )),
            None => Ok(()),
        }
    }

    /// What an audit entry records of `value`: the public id of a secret
    /// pasted into it, else `value`.
    pub(crate) fn shown(&self, value: &str) -> String {
        self.service_id(value)
            .unwrap_or_else(|| text::shown_id(value))
    }

    /// The public id of the configured service secret `value` is, however
    /// it was pasted (`Bearer `, quotes, surrounding spaces).
    fn service_id(&self, value: &str) -> Option<String> {
        let bare = value.trim();
        let bare = bare.strip_prefix("Bearer ").unwrap_or(bare).trim();
        let bare = bare.trim_matches(|c| c == '"' || c == '\'').trim();
        let secrets = self.services.load();
        secrets
            .find(bare)
            .map(|found| found.credential_id.to_owned())
    }
}
