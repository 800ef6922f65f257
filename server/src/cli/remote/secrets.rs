//! `tessera secrets status`: whether the previous secret of each service's
//! rotation is still presented, from the listed service secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tessera_client::{Client, pb};

use super::output::{Printed, json_time, table, when};
use super::{Failure, SecretsCommand};

/// Uses are recorded to the minute: a use recorded at minute `t` may have
/// happened until the end of that minute.
const GRANULARITY_SECS: i64 = 60;
/// What an empty list means: ListCredentials shows service secrets to
/// admins only, and to anyone else the list of their own credentials.
const NONE_LISTED: &str = "no service secret listed: none is configured, \
    or you are not in Admin (only members of Admin see service secrets)";

/// Runs a `tessera secrets` command.
pub(super) async fn run(mut client: Client, command: SecretsCommand) -> Result<Printed, Failure> {
    let SecretsCommand::Status { quiet } = command;
    let filter = pb::ListCredentialsRequest {
        kind: pb::CredentialKind::ServiceSecret.into(),
        page_size: 1_000,
        ..Default::default()
    };
    let secrets = client.all_credentials(filter).await?;
    if secrets.is_empty() {
        return Ok(Printed {
            text: NONE_LISTED.to_owned(),
            json: json!([]),
        });
    }
    let mut by_name: BTreeMap<&str, [Option<&pb::CredentialInfo>; 2]> = BTreeMap::new();
    for secret in &secrets {
        let slots = by_name.entry(secret.name.as_str()).or_default();
        match secret.slot.as_str() {
            "previous" => slots[1] = Some(secret),
            _ => slots[0] = Some(secret),
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (name, [current, previous]) in by_name {
        let verdict = verdict(previous, quiet, now);
        let last = |slot: Option<&pb::CredentialInfo>| match slot {
            Some(secret) if secret.last_used_at.is_some() => when(secret.last_used_at.as_ref()),
            Some(_) => "never".to_owned(),
            None => "-".to_owned(),
        };
        rows.push(vec![
            name.to_owned(),
            last(current),
            last(previous),
            verdict.replace('_', " "),
        ]);
        let slot_json = |slot: Option<&pb::CredentialInfo>| {
            slot.map(|secret| {
                json!({
                    "credential_id": secret.credential_id,
                    "last_used_at": json_time(secret.last_used_at.as_ref()),
                })
            })
        };
        json.push(json!({
            "name": name,
            "current": slot_json(current),
            "previous": slot_json(previous),
            "verdict": verdict,
        }));
    }
    let headers = [
        "SERVICE",
        "CURRENT LAST USED",
        "PREVIOUS LAST USED",
        "PREVIOUS",
    ];
    Ok(Printed {
        text: table(&headers, &rows),
        json: json.into(),
    })
}

/// `no_previous`, `in_use` or `safe_to_retire`: the previous secret is
/// safe to retire once no replica has seen it for `quiet`.
fn verdict(previous: Option<&pb::CredentialInfo>, quiet: Duration, now: i64) -> &'static str {
    let Some(previous) = previous else {
        return "no_previous";
    };
    let Some(used) = &previous.last_used_at else {
        return "safe_to_retire";
    };
    let quiet = i64::try_from(quiet.as_secs()).unwrap_or(i64::MAX);
    let unused_for = now - (used.seconds + GRANULARITY_SECS);
    if unused_for >= quiet {
        "safe_to_retire"
    } else {
        "in_use"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used_at(seconds: i64) -> pb::CredentialInfo {
        pb::CredentialInfo {
            last_used_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }
    }

    #[test]
    fn the_previous_secret_is_safe_to_retire_after_a_quiet_period() {
        let quiet = Duration::from_secs(900);
        let now = 10_000;
        assert_eq!(verdict(None, quiet, now), "no_previous");
        let never = pb::CredentialInfo::default();
        assert_eq!(verdict(Some(&never), quiet, now), "safe_to_retire");
        // Recorded in the minute starting 960 s ago: it may have been used
        // until 900 s ago.
        assert_eq!(
            verdict(Some(&used_at(now - 960)), quiet, now),
            "safe_to_retire"
        );
        assert_eq!(verdict(Some(&used_at(now - 959)), quiet, now), "in_use");
    }
}
