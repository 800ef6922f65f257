//! One test case, run on SQLite and on PostgreSQL.

/// Runs each `$case` on a fresh SQLite file (as `sqlite::$case`) and on a
/// fresh PostgreSQL database (as `postgres::$case`). `$open`, a function of
/// the calling module, turns the `&TestDatabase` into what the cases take:
///
/// ```text
/// async fn open(db: &TestDatabase) -> Arc<SeaStore> { … }
/// async fn migrations_are_idempotent(store: Arc<SeaStore>) { … }
/// tessera_tests::on_both_backends!(open => migrations_are_idempotent);
/// ```
///
/// The PostgreSQL case returns early when PostgreSQL is unreachable and not
/// required (see [`TestDatabase::postgres`](crate::TestDatabase::postgres)).
#[macro_export]
macro_rules! on_both_backends {
    ($open:ident => $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = $crate::TestDatabase::sqlite();
                    super::$case(super::$open(&db).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = $crate::TestDatabase::postgres().await else { return };
                    super::$case(super::$open(&db).await).await;
                }
            )*
        }
    };
}
