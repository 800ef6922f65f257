//! `tessera rewrap`: every stored secret under the current encryption key,
//! and a report of the values per key before and after.

use super::operator::{open, write_stdout};
use crate::config::DatabaseArgs;
use crate::store::Rewrapped;
use crate::store::sealing::SealedCensus;

/// `tessera rewrap`.
pub(crate) async fn rewrap(database: &DatabaseArgs) -> Result<(), String> {
    if database.keys()?.is_empty() {
        return Err(
            "no encryption key is configured: set TESSERA_ENCRYPTION_KEY \
                    (or TESSERA_ENCRYPTION_KEY_FILE), the new key first"
                .into(),
        );
    }
    let store = open(database).await?;
    let current = store.current_key_id().unwrap_or_default();
    let result = store.rewrap().await;
    store.close().await;
    let rewrapped = result.map_err(|err| format!("rewrap stopped: {err}"))?;
    write_stdout(&report(&rewrapped, &current))?;
    if rewrapped.after.stale(&current) {
        // Servers kept moving values behind every pass: the old key is
        // still needed, which the exit status must say.
        return Err(
            "some values are still not under the current key: run tessera rewrap again \
                    before dropping an old key"
                .into(),
        );
    }
    Ok(())
}

/// The report: values per key before, those rewrapped, and after.
fn report(rewrapped: &Rewrapped, current: &str) -> String {
    let mut lines = vec![
        format!("before: {}", describe(&rewrapped.before, current)),
        format!(
            "rewrapped {} value(s){}",
            rewrapped.moved.total(),
            match rewrapped.moved.total() {
                0 => String::new(),
                _ => format!(": {}", describe(&rewrapped.moved, current)),
            }
        ),
    ];
    if rewrapped.skipped > 0 {
        lines.push(format!(
            "skipped {} value(s) a server changed meanwhile (each pass looks again)",
            rewrapped.skipped
        ));
    }
    lines.push(format!("after: {}", describe(&rewrapped.after, current)));
    lines.join("\n")
}

/// `2 plaintext, 1 under key 0123…, 5 under key 4567… (current)`.
fn describe(census: &SealedCensus, current: &str) -> String {
    let mut parts = Vec::new();
    if census.plaintext > 0 {
        parts.push(format!("{} plaintext", census.plaintext));
    }
    for (key_id, count) in &census.by_key {
        let mark = if key_id == current { " (current)" } else { "" };
        parts.push(format!("{count} under key {key_id}{mark}"));
    }
    if census.unreadable > 0 {
        parts.push(format!("{} unreadable", census.unreadable));
    }
    if parts.is_empty() {
        return "no values".into();
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_values_per_key() {
        let (old, new) = ("0123456789abcdef", "fedcba9876543210");
        let mut before = SealedCensus::default();
        before.add(None, 2);
        before.add(Some(&format!("enc:v1:{old}:")), 1);
        before.add(Some(&format!("enc:v1:{new}:")), 2);
        let mut moved = before.clone();
        moved.by_key.remove(new);
        let mut after = SealedCensus::default();
        after.add(Some(&format!("enc:v1:{new}:")), 5);
        let rewrapped = Rewrapped {
            before,
            moved,
            skipped: 0,
            after,
        };
        assert_eq!(
            report(&rewrapped, new),
            format!(
                "before: 2 plaintext, 1 under key {old}, 2 under key {new} (current)\n\
                 rewrapped 3 value(s): 2 plaintext, 1 under key {old}\n\
                 after: 5 under key {new} (current)"
            )
        );
    }
}
