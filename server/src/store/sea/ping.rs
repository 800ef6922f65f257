//! The health ping. On PostgreSQL it reads the database's clock, so that
//! the process's [`DatabaseClock`] keeps following it.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::DbResult;
use crate::store::DatabaseClock;

const READ_CLOCK: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8";

/// Pings `db`; on PostgreSQL also sets `clock` by the database's.
pub(super) async fn ping(db: &DatabaseConnection, clock: &DatabaseClock) -> DbResult<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return db.ping().await;
    }
    let sent = clock.local_ms();
    let statement = Statement::from_string(DbBackend::Postgres, READ_CLOCK);
    let row = db.query_one_raw(statement).await?;
    let received = clock.local_ms();
    if let Some(row) = row {
        clock.observe(sent, row.try_get_by_index(0)?, received);
    }
    Ok(())
}
