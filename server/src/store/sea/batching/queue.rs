//! Each caller hands in a request and waits for its own answer, while
//! worker tasks take every request waiting (up to a bound) and answer them
//! with one piece of work. A lone call is taken at once by an idle worker
//! and waits for nobody.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::StoreError;

/// Requests that may wait for a worker; beyond this, callers wait to enqueue.
const QUEUE_DEPTH: usize = 8192;

struct Job<Req, Ans> {
    request: Req,
    reply: oneshot::Sender<Ans>,
}

type Receiver<Req, Ans> = Arc<Mutex<mpsc::Receiver<Job<Req, Ans>>>>;

/// The callers' side: hands requests to the workers.
pub(super) struct Queue<Req, Ans> {
    jobs: mpsc::Sender<Job<Req, Ans>>,
}

impl<Req, Ans> std::fmt::Debug for Queue<Req, Ans> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl<Req: Send + 'static, Ans: Send + 'static> Queue<Req, Ans> {
    /// Starts `workers` tasks that answer up to `max_batch` requests at a
    /// time with `handler`, which returns one answer per request, in order.
    /// A worker that panics is restarted (logged as `name`); the calls of
    /// the batch it held get no answer. The workers stop once the queue is
    /// dropped and the requests already queued are answered.
    pub(super) fn start<F, Fut>(
        name: &'static str,
        workers: usize,
        max_batch: usize,
        handler: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Ans>> + Send + 'static,
    {
        let (jobs, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let handler = Arc::new(handler);
        for _ in 0..workers.max(1) {
            tokio::spawn(supervise(
                name,
                receiver.clone(),
                handler.clone(),
                max_batch,
            ));
        }
        Self { jobs }
    }

    /// Hands in `request` with whatever else is waiting and waits for its
    /// answer; `None` when the workers have stopped or the batch failed by
    /// a panic.
    pub(super) async fn call(&self, request: Req) -> Option<Ans> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { request, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Restarts a worker that panicked: with one worker (SQLite's writer), a
/// dead one would fail every later call until the process restarts.
async fn supervise<Req, Ans, F, Fut>(
    name: &'static str,
    receiver: Receiver<Req, Ans>,
    handler: Arc<F>,
    max_batch: usize,
) where
    Req: Send + 'static,
    Ans: Send + 'static,
    F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Ans>> + Send + 'static,
{
    loop {
        let worker = work(receiver.clone(), handler.clone(), max_batch);
        match tokio::spawn(worker).await {
            Err(err) if err.is_panic() => tracing::error!("{name} panicked; restarting it"),
            // The queue is gone (or the runtime is shutting down).
            _ => return,
        }
    }
}

async fn work<Req, Ans, F, Fut>(receiver: Receiver<Req, Ans>, handler: Arc<F>, max_batch: usize)
where
    F: Fn(Vec<Req>) -> Fut,
    Fut: Future<Output = Vec<Ans>>,
{
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        // One worker at a time collects a batch; the others are working.
        if receiver.lock().await.recv_many(&mut jobs, max_batch).await == 0 {
            return;
        }
        let (requests, replies): (Vec<Req>, Vec<_>) =
            jobs.drain(..).map(|job| (job.request, job.reply)).unzip();
        let answers = handler(requests).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The caller may have given up (deadline, cancellation).
            let _ = reply.send(answer);
        }
    }
}

/// The error for a call [`Queue::call`] left unanswered: `workers` (as
/// named to [`Queue::start`]) have stopped or failed its batch.
pub(super) fn stopped(workers: &str) -> StoreError {
    StoreError::Unavailable(format!("{workers} has stopped"))
}
