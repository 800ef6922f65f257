//! Checks on free-text request fields shared by several RPCs.

use crate::error::{Error, Result};

/// Longest display name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// A display name (of an admin, of a workspace): at most [`MAX_NAME_LEN`]
/// bytes and no control characters, which would garble logs and UIs.
pub fn display_name(field: &'static str, name: &str) -> Result<()> {
    if name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_NAME_LEN} bytes, no control characters"),
        ));
    }
    Ok(())
}
