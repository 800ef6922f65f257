//! Calls answered together: the group commit of ticket and audit writes
//! (`writes.rs`, with `isolate.rs` for a batch that fails) and
//! VerifyBearer's token lookups (`lookups.rs`), both on the generic queue
//! of `queue.rs`; `pg_arrays.rs` and `sqlite_json.rs` hold the group
//! commit's PostgreSQL and SQLite statements.
//!
//! Why: a statement's cost is mostly fixed (a round trip to PostgreSQL, two
//! thread hand-offs to sqlx's SQLite worker), so under load one statement
//! for many calls is far cheaper than one each. Why it changes no answer:
//! each caller waits for its own write to commit; `DELETE … RETURNING`
//! hands each ticket row to one statement, and a hash asked for twice in
//! one batch goes to the first asker only; a lookup's query starts after
//! its call arrived, so a token revoked before the call is not found. A
//! write the database refuses fails alone and costs the writes batched
//! with it a few more transactions, not one each: a failed batch is split
//! in halves, each in its own transaction, the earlier half first.

mod isolate;
mod lookups;
pub(super) mod pg_arrays;
mod queue;
pub(super) mod sqlite_json;
mod writes;

pub(super) use lookups::{Lookups, any_of};
pub(super) use writes::{Write, Writer, Written};
