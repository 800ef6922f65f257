//! What the remote commands print: aligned tables and `label: value` lines
//! for people, one JSON document for scripts; times in the local time zone
//! with how far they are from now.

use jiff::tz::TimeZone;
use serde_json::Value;
use tessera_client::pb;

/// A command's result, in both forms.
pub(crate) struct Printed {
    /// For people.
    pub(crate) text: String,
    /// For scripts (`--json`).
    pub(crate) json: Value,
}

/// `label: value` lines, the labels aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    // The widest label and its colon.
    let width = pairs
        .iter()
        .map(|(label, _)| label.len() + 1)
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {value}", label = format!("{label}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table: a header row, then `rows`, each column as wide as its widest
/// cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![line(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

/// `2026-12-07 12:20 CET (in 29 d)`, or `-` when unset.
pub(crate) fn when(at: Option<&prost_types::Timestamp>) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let Ok(instant) = jiff::Timestamp::new(at.seconds, at.nanos) else {
        return format!("{}s", at.seconds);
    };
    let local = instant.to_zoned(TimeZone::system());
    let shown = local.strftime("%Y-%m-%d %H:%M %Z");
    let from_now = at.seconds - jiff::Timestamp::now().as_second();
    format!("{shown} ({})", relative(from_now))
}

/// `in 29 d`, `3 h ago`, `now`.
fn relative(seconds: i64) -> String {
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..60 => return "now".into(),
        60..3_600 => format!("{} min", magnitude / 60),
        3_600..86_400 => format!("{} h", magnitude / 3_600),
        _ => format!("{} d", magnitude / 86_400),
    };
    if seconds > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// An RFC 3339 time for JSON, or null.
pub(crate) fn json_time(at: Option<&prost_types::Timestamp>) -> Value {
    at.and_then(|at| jiff::Timestamp::new(at.seconds, at.nanos).ok())
        .map_or(Value::Null, |at| Value::String(at.to_string()))
}

/// A credential record as JSON.
pub(crate) fn credential_json(credential: &pb::CredentialInfo) -> Value {
    serde_json::json!({
        "credential_id": credential.credential_id,
        "kind": kind_name(credential.kind()),
        "subject": credential.subject,
        "name": credential.name,
        "created_at": json_time(credential.created_at.as_ref()),
        "created_by": credential.created_by,
        "expires_at": json_time(credential.expires_at.as_ref()),
        "last_used_at": json_time(credential.last_used_at.as_ref()),
        "revoked_at": json_time(credential.revoked_at.as_ref()),
        "slot": credential.slot,
    })
}

/// `user_access`, `workspace_auth`, … as the records name kinds.
pub(crate) fn kind_name(kind: pb::CredentialKind) -> String {
    kind.as_str_name()
        .trim_start_matches("CREDENTIAL_KIND_")
        .to_ascii_lowercase()
}

/// A principal as JSON.
pub(crate) fn principal_json(principal: &pb::Principal) -> Value {
    serde_json::json!({
        "kind": principal.kind().as_str_name().trim_start_matches("PRINCIPAL_KIND_").to_ascii_lowercase(),
        "subject": principal.subject,
        "email": principal.email,
        "display_name": principal.display_name,
        "groups": principal.groups,
        "credential_id": principal.credential_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["usr_1".to_owned(), "laptop".to_owned()],
            vec!["wsa_22".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["ID", "NAME"], &rows),
            "ID      NAME\nusr_1   laptop\nwsa_22"
        );
        assert_eq!(
            fields(&[("id", "a".into()), ("expires", "b".into())]),
            "id:       a\nexpires:  b"
        );
    }

    #[test]
    fn times_say_how_far_they_are() {
        assert_eq!(relative(29 * 86_400 + 5), "in 29 d");
        assert_eq!(relative(-3 * 3_600), "3 h ago");
        assert_eq!(relative(-10), "now");
        assert_eq!(relative(120), "in 2 min");
        assert_eq!(when(None), "-");
    }
}
