//! Looking straight at what the server stored.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, QueryResult, Statement,
    TransactionTrait,
};

/// Every row `sql` returns; panics on an error.
pub async fn rows(conn: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// The number in the first column of the first row, e.g. of `SELECT COUNT(*)`.
pub async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let rows = rows(conn, sql).await;
    let row = rows.first().unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// The first `columns` columns of every row, all text.
pub async fn strings(conn: &DatabaseConnection, sql: &str, columns: usize) -> Vec<Vec<String>> {
    rows(conn, sql)
        .await
        .iter()
        .map(|row| {
            (0..columns)
                .map(|i| row.try_get_by_index::<String>(i).expect("text column"))
                .collect()
        })
        .collect()
}

/// Takes SQLite's write lock in a transaction the test holds until it rolls
/// it back: every write of the server waits for it meanwhile.
pub async fn hold_write_lock(conn: &DatabaseConnection) -> DatabaseTransaction {
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("CREATE TABLE write_lock_held_by_test (x INTEGER)")
        .await
        .expect("take SQLite's write lock");
    lock
}
