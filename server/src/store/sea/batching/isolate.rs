//! Answering every write of a batch that failed, without giving up on
//! batching: the failed batch is split in halves, recursively, until the
//! writes that fail stand alone.
//!
//! Why not retry each write on its own: one bad write in every batch (one
//! relayed request a caller can send at will) would turn a batch of 512
//! into 513 transactions, so everybody's writes would go at the pace of one
//! transaction each. Halving finds one bad write among n in about
//! 2·log2(n) more transactions (19 for 512); k bad writes cost at most
//! about 2k·log2(n/k), and never more than 2n − 1.

use crate::store::sea::DbResult;
use crate::store::sea::error::{is_outage, store_error};
use crate::store::{Result, StoreError};

/// Applies `items` with `apply`, which applies a slice in one transaction:
/// all of it or none. A slice that fails, unless by an outage, is split in
/// halves, each applied in its own transaction, the first half first, so
/// an earlier item still goes before a later one (a ticket asked for twice
/// still goes to the first asker). An outage fails every item not yet
/// committed: retrying on a database that is gone only makes callers wait.
/// One answer per item, in order.
pub(super) async fn isolate<'a, T, A, F, Fut>(items: &'a [T], mut apply: F) -> Vec<Result<A>>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: Future<Output = DbResult<Vec<A>>>,
{
    let mut answers = Vec::with_capacity(items.len());
    // Parts still to apply, the next one last; together they are the
    // items after those answered, in order.
    let mut pending = vec![items];
    while let Some(part) = pending.pop() {
        match apply(part).await {
            Ok(done) if done.len() == part.len() => answers.extend(done.into_iter().map(Ok)),
            Ok(_) => {
                let err = StoreError::Db("a batch gave the wrong number of answers".to_owned());
                answers.extend(part.iter().map(|_| Err(err.clone())));
            }
            Err(err) if part.len() > 1 && !is_outage(&err) => {
                let (first, second) = part.split_at(part.len() / 2);
                pending.extend([second, first]);
            }
            Err(err) => {
                let failed = if is_outage(&err) {
                    part.len() + pending.drain(..).map(<[T]>::len).sum::<usize>()
                } else {
                    part.len()
                };
                let err = store_error(&err);
                answers.extend((0..failed).map(|_| Err(err.clone())));
            }
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbErr, RuntimeErr};

    use super::*;

    /// Applies `items` as the database would: all, or none when one of
    /// them is in `bad`.
    async fn apply_unless(items: &[u32], bad: &[u32]) -> DbResult<Vec<u32>> {
        if items.iter().any(|item| bad.contains(item)) {
            Err(DbErr::Custom("refused".into()))
        } else {
            Ok(items.to_vec())
        }
    }

    /// The answers, as `Ok(item)` or the error's kind.
    fn summary(answers: &[Result<u32>]) -> Vec<std::result::Result<u32, &'static str>> {
        let kind = |err: &StoreError| match err {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Db(_) => "db",
            StoreError::Sealing(_) => "sealing",
        };
        answers
            .iter()
            .map(|answer| answer.as_ref().copied().map_err(kind))
            .collect()
    }

    #[tokio::test]
    async fn bad_items_fail_alone_in_logarithmic_attempts() {
        let items: Vec<u32> = (0..512).collect();
        for bad in [
            vec![0],
            vec![300],
            vec![511],
            vec![7, 8],
            vec![0, 255, 256, 511],
        ] {
            let mut attempts = 0;
            let answers = isolate(&items, |part| {
                attempts += 1;
                apply_unless(part, &bad)
            })
            .await;
            let expected: Vec<_> = (0..512)
                .map(|i| if bad.contains(&i) { Err("db") } else { Ok(i) })
                .collect();
            assert_eq!(summary(&answers), expected, "bad: {bad:?}");
            // Two per halving for each bad item, and the first attempt.
            let bound = 1 + 2 * 9 * bad.len();
            assert!(attempts <= bound, "{attempts} attempts for {bad:?}");
        }
    }

    #[tokio::test]
    async fn a_clean_batch_is_one_attempt_and_a_lone_failure_is_not_retried() {
        let mut attempts = 0;
        let answers = isolate(&[1, 2, 3], |part| {
            attempts += 1;
            apply_unless(part, &[])
        })
        .await;
        assert_eq!(
            (summary(&answers), attempts),
            (vec![Ok(1), Ok(2), Ok(3)], 1)
        );
        let mut attempts = 0;
        let answers = isolate(&[4], |part| {
            attempts += 1;
            apply_unless(part, &[4])
        })
        .await;
        assert_eq!((summary(&answers), attempts), (vec![Err("db")], 1));
    }

    /// The batch failed on a bad item, then the database went away while
    /// its first half was applied: nothing more is tried, and every item
    /// is answered unavailable.
    #[tokio::test]
    async fn an_outage_fails_what_is_left_at_once() {
        let items: Vec<u32> = (0..8).collect();
        let mut attempts = 0;
        let answers = isolate(&items, |part| {
            attempts += 1;
            let result = match attempts {
                1 => Err(DbErr::Custom("refused".into())),
                _ => Err(DbErr::Conn(RuntimeErr::Internal("gone".into()))),
            };
            async move { result.map(|()| part.to_vec()) }
        })
        .await;
        assert_eq!(attempts, 2);
        assert_eq!(summary(&answers), vec![Err("unavailable"); 8]);
    }
}
