//! VerifyBearer's token lookups, answered together (see `queue.rs`): under
//! load, one query finds the users or workspaces of many tokens.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};

use super::queue::{self, Queue};
use crate::store::sea::error::store_error;
use crate::store::sea::gate::Gate;
use crate::store::sea::{DbResult, users, workspaces};
use crate::store::{CredentialState, Result, UserRecord, WorkspaceRecord};

/// Most tokens in one query.
const MAX_BATCH: usize = 256;
/// The worker tasks, as logs and errors name them.
const USERS: &str = "the user token lookup";
const WORKSPACES: &str = "the workspace lookup";

type Lookup<V> = Queue<String, Result<Option<V>>>;

/// The lookup queues, each with its own worker tasks.
#[derive(Debug)]
pub(in crate::store::sea) struct Lookups {
    users: Lookup<(UserRecord, CredentialState)>,
    workspaces: Lookup<(WorkspaceRecord, CredentialState)>,
}

impl Lookups {
    /// Starts `workers` tasks per kind of token, querying `db`, each
    /// holding a `gate` permit while it queries.
    pub(in crate::store::sea) fn start(
        db: &DatabaseConnection,
        gate: &Gate,
        workers: usize,
    ) -> Self {
        let users = lookup(USERS, db, gate, workers, |db, hashes| async move {
            users::users_by_tokens(&db, &hashes).await
        });
        let workspaces = lookup(WORKSPACES, db, gate, workers, |db, hashes| async move {
            workspaces::by_auth_hashes(&db, &hashes).await
        });
        Self { users, workspaces }
    }

    /// The user whose access token hashes to `hash`.
    pub(in crate::store::sea) async fn user(
        &self,
        hash: &str,
    ) -> Result<Option<(UserRecord, CredentialState)>> {
        let answer = self.users.call(hash.to_owned()).await;
        answer.unwrap_or_else(|| Err(queue::stopped(USERS)))
    }

    /// The workspace whose auth token hashes to `hash`.
    pub(in crate::store::sea) async fn workspace(
        &self,
        hash: &str,
    ) -> Result<Option<(WorkspaceRecord, CredentialState)>> {
        let answer = self.workspaces.call(hash.to_owned()).await;
        answer.unwrap_or_else(|| Err(queue::stopped(WORKSPACES)))
    }
}

/// A queue named `name` whose workers answer up to [`MAX_BATCH`] hashes
/// with one `query`: one answer per hash, in order, or the query's error
/// for each.
fn lookup<V, Q, Fut>(
    name: &'static str,
    db: &DatabaseConnection,
    gate: &Gate,
    workers: usize,
    query: Q,
) -> Lookup<V>
where
    V: Clone + Send + 'static,
    Q: Fn(DatabaseConnection, Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = DbResult<Vec<Option<V>>>> + Send + 'static,
{
    let (db, gate) = (db.clone(), gate.clone());
    let query = std::sync::Arc::new(query);
    Queue::start(name, workers, MAX_BATCH, move |hashes: Vec<String>| {
        let (db, gate, query) = (db.clone(), gate.clone(), query.clone());
        async move {
            let count = hashes.len();
            let found = match gate.enter().await {
                Ok(_permit) => query(db, hashes).await.map_err(|err| store_error(&err)),
                Err(err) => Err(err),
            };
            match found {
                Ok(found) => found.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err); count],
            }
        }
    })
}

/// `column` is one of `keys`, as one SQL text for any number of keys (so
/// it is prepared once) and its one parameter `$1`: a JSON array read by
/// `json_each` on SQLite, an array on PostgreSQL.
pub(in crate::store::sea) fn any_of(
    db: &impl ConnectionTrait,
    column: &str,
    keys: &[String],
) -> (String, Value) {
    if db.get_database_backend() == DbBackend::Postgres {
        return (format!("{column} = ANY($1)"), keys.to_vec().into());
    }
    let condition = format!("{column} IN (SELECT value FROM json_each($1))");
    (condition, serde_json::Value::from(keys).to_string().into())
}
