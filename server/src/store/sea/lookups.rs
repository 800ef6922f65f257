//! VerifyBearer's token lookups, answered together (see `queue.rs`): under
//! load, one query finds the users or workspaces of many tokens.
//!
//! Batching changes no answer: a lookup's query starts after its call
//! arrived, so a token revoked or rotated before the call is not found.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};

use super::queue::{self, Queue};
use super::{users, workspaces};
use crate::store::{Result, UserRecord, WorkspaceRecord};

/// Most tokens in one query.
const MAX_BATCH: usize = 256;
/// The worker tasks, as logs and errors name them.
const USERS: &str = "the user token lookup";
const WORKSPACES: &str = "the workspace lookup";

type Lookup<V> = Queue<String, Result<Option<V>>>;

/// The lookup queues, each with its own worker tasks.
#[derive(Debug)]
pub(super) struct Lookups {
    users: Lookup<UserRecord>,
    workspaces: Lookup<WorkspaceRecord>,
}

impl Lookups {
    /// Starts `workers` tasks per kind of token, querying `db`.
    pub(super) fn start(db: &DatabaseConnection, workers: usize) -> Self {
        let users_db = db.clone();
        let users = Queue::start(USERS, workers, MAX_BATCH, move |hashes| {
            let db = users_db.clone();
            async move { answers(users::users_by_tokens(&db, &hashes).await, hashes.len()) }
        });
        let db = db.clone();
        let workspaces = Queue::start(WORKSPACES, workers, MAX_BATCH, move |hashes| {
            let db = db.clone();
            async move { answers(workspaces::by_auth_hashes(&db, &hashes).await, hashes.len()) }
        });
        Self { users, workspaces }
    }

    /// The user whose access token hashes to `hash`.
    pub(super) async fn user(&self, hash: &str) -> Result<Option<UserRecord>> {
        let answer = self.users.call(hash.to_owned()).await;
        answer.unwrap_or_else(|| Err(queue::stopped(USERS)))
    }

    /// The workspace whose auth token hashes to `hash`.
    pub(super) async fn workspace(&self, hash: &str) -> Result<Option<WorkspaceRecord>> {
        let answer = self.workspaces.call(hash.to_owned()).await;
        answer.unwrap_or_else(|| Err(queue::stopped(WORKSPACES)))
    }
}

/// One answer per token: what the query found, or its error for each.
fn answers<V>(found: Result<Vec<Option<V>>>, tokens: usize) -> Vec<Result<Option<V>>> {
    match found {
        Ok(found) => found.into_iter().map(Ok).collect(),
        Err(err) => vec![err; tokens].into_iter().map(Err).collect(),
    }
}

/// `column` is one of `keys`, as one SQL text for any number of keys (so
/// it is prepared once) and its one parameter `$1`: a JSON array read by
/// `json_each` on SQLite, an array on PostgreSQL.
pub(super) fn any_of(db: &impl ConnectionTrait, column: &str, keys: &[String]) -> (String, Value) {
    if db.get_database_backend() == DbBackend::Postgres {
        return (format!("{column} = ANY($1)"), keys.to_vec().into());
    }
    let condition = format!("{column} IN (SELECT value FROM json_each($1))");
    (condition, json_array(keys).into())
}

/// `keys` as a JSON array of strings.
fn json_array(keys: &[String]) -> String {
    let mut json = String::from("[");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        for c in key.chars() {
            match c {
                '"' | '\\' => {
                    json.push('\\');
                    json.push(c);
                }
                c if c.is_control() => json.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => json.push(c),
            }
        }
        json.push('"');
    }
    json.push(']');
    json
}
