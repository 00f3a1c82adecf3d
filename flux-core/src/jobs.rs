//! Jobs: releases, policy changes and "sync now" run one at a time per source, each with an id
//! and a status that can be asked for while it is queued, running or done.
//!
//! One [`JobQueue`] per source serialises everything that writes to it, so two jobs never race
//! each other for the same branch. The queue is runtime-agnostic: [`JobQueue::new`] returns the
//! queue (cheap to clone, for the API handlers) and a [`JobWorker`] whose [`JobWorker::run`]
//! future the caller spawns.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};

use crate::error::{Error, Result};

/// A job's id: unique within the process, ordered by submission.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// Wraps an id given back by a client.
    pub fn new(id: impl Into<String>) -> Self {
        JobId(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobStatus<R> {
    /// Waiting for the jobs before it.
    Queued,
    /// Running now.
    Running,
    /// Done, with its result.
    Succeeded {
        /// What it did.
        result: R,
    },
    /// Done, with an error.
    Failed {
        /// Why.
        error: String,
    },
}

impl<R> JobStatus<R> {
    /// Whether the job has finished, either way.
    pub fn is_done(&self) -> bool {
        matches!(self, JobStatus::Succeeded { .. } | JobStatus::Failed { .. })
    }
}

/// A job's work.
pub type JobFn<R> = Box<dyn FnOnce() -> BoxFuture<'static, Result<R>> + Send>;

struct Shared<R> {
    statuses: Mutex<Statuses<R>>,
    changed: Notify,
    next: AtomicU64,
    retain: usize,
}

struct Statuses<R> {
    by_id: BTreeMap<JobId, JobStatus<R>>,
    finished: VecDeque<JobId>,
}

impl<R: Clone> Shared<R> {
    fn set(&self, id: &JobId, status: JobStatus<R>) {
        let mut s = crate::memory_lock(&self.statuses);
        if status.is_done() {
            s.finished.push_back(id.clone());
            while s.finished.len() > self.retain {
                if let Some(old) = s.finished.pop_front() {
                    s.by_id.remove(&old);
                }
            }
        }
        s.by_id.insert(id.clone(), status);
        drop(s);
        self.changed.notify_waiters();
    }
}

/// Submits jobs and answers for their status. Clones share the queue.
pub struct JobQueue<R> {
    shared: Arc<Shared<R>>,
    sender: mpsc::UnboundedSender<(JobId, JobFn<R>)>,
}

impl<R> Clone for JobQueue<R> {
    fn clone(&self) -> Self {
        JobQueue { shared: self.shared.clone(), sender: self.sender.clone() }
    }
}

impl<R> fmt::Debug for JobQueue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobQueue").finish_non_exhaustive()
    }
}

/// Runs a queue's jobs one at a time.
pub struct JobWorker<R> {
    shared: Arc<Shared<R>>,
    receiver: mpsc::UnboundedReceiver<(JobId, JobFn<R>)>,
}

impl<R> fmt::Debug for JobWorker<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobWorker").finish_non_exhaustive()
    }
}

impl<R: Clone + Send + 'static> JobQueue<R> {
    /// A queue that remembers the statuses of the last `retain` finished jobs.
    pub fn new(retain: usize) -> (JobQueue<R>, JobWorker<R>) {
        let shared = Arc::new(Shared {
            statuses: Mutex::new(Statuses { by_id: BTreeMap::new(), finished: VecDeque::new() }),
            changed: Notify::new(),
            next: AtomicU64::new(1),
            retain: retain.max(1),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        (JobQueue { shared: shared.clone(), sender }, JobWorker { shared, receiver })
    }

    /// Queues `job`; returns its id at once.
    ///
    /// # Errors
    /// [`Error::Other`] when the worker has stopped (the daemon is shutting down).
    pub fn submit(&self, job: JobFn<R>) -> Result<JobId> {
        let n = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let id = JobId(format!("{:x}-{n}", jiff::Timestamp::now().as_second()));
        self.shared.set(&id, JobStatus::Queued);
        self.sender.send((id.clone(), job)).map_err(|_| {
            self.shared.set(&id, JobStatus::Failed { error: "the job queue has stopped".into() });
            Error::other("the job queue has stopped; no new jobs are taken")
        })?;
        Ok(id)
    }

    /// A job's status, or `None` if the id is unknown (or finished long ago and forgotten).
    pub fn status(&self, id: &JobId) -> Option<JobStatus<R>> {
        crate::memory_lock(&self.shared.statuses).by_id.get(id).cloned()
    }

    /// Waits until job `id` is done and returns its final status.
    pub async fn wait(&self, id: &JobId) -> Option<JobStatus<R>> {
        loop {
            let changed = self.shared.changed.notified();
            match self.status(id) {
                Some(s) if s.is_done() => return Some(s),
                None => return None,
                Some(_) => changed.await,
            }
        }
    }
}

impl<R: Clone + Send + 'static> JobWorker<R> {
    /// Runs jobs in submission order, one at a time, until every [`JobQueue`] handle is dropped
    /// or `shutdown` completes. On shutdown the running job finishes (a job is never abandoned
    /// halfway through a write); jobs still queued are marked failed.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => None,
                next = self.receiver.recv() => next,
            };
            let Some((id, job)) = next else { break };
            self.shared.set(&id, JobStatus::Running);
            let status = match job().await {
                Ok(result) => JobStatus::Succeeded { result },
                Err(e) => JobStatus::Failed { error: e.to_string() },
            };
            self.shared.set(&id, status);
        }
        self.receiver.close();
        while let Ok((id, _)) = self.receiver.try_recv() {
            self.shared.set(&id, JobStatus::Failed { error: "cancelled: the daemon is shutting down".into() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(log: Arc<Mutex<Vec<String>>>, name: &'static str, fail: bool) -> JobFn<String> {
        Box::new(move || {
            Box::pin(async move {
                log.lock().unwrap().push(format!("start {name}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                log.lock().unwrap().push(format!("end {name}"));
                if fail { Err(Error::other(format!("{name} broke"))) } else { Ok(format!("{name} done")) }
            })
        })
    }

    #[tokio::test]
    async fn jobs_run_one_at_a_time_in_order() {
        let (queue, worker) = JobQueue::new(10);
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = queue.submit(job(log.clone(), "a", false)).unwrap();
        let b = queue.submit(job(log.clone(), "b", true)).unwrap();
        assert_eq!(queue.status(&a), Some(JobStatus::Queued));
        let handle = tokio::spawn(worker.run(std::future::pending()));
        assert_eq!(queue.wait(&a).await, Some(JobStatus::Succeeded { result: "a done".into() }));
        assert_eq!(queue.wait(&b).await, Some(JobStatus::Failed { error: "b broke".into() }));
        assert_eq!(*log.lock().unwrap(), ["start a", "end a", "start b", "end b"], "never interleaved");
        assert_eq!(queue.status(&JobId::new("nope")), None);
        drop(queue);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_finishes_the_running_job_and_cancels_the_rest() {
        let (queue, worker) = JobQueue::<String>::new(10);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let running = queue
            .submit(Box::new(move || {
                Box::pin(async move {
                    let _ = started_tx.send(());
                    let _ = release_rx.await;
                    Ok("finished cleanly".to_string())
                })
            }))
            .unwrap();
        let queued = queue.submit(Box::new(|| Box::pin(async { Ok("never".to_string()) }))).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async move {
            let _ = stop_rx.await;
        }));
        started_rx.await.unwrap();
        stop_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        handle.await.unwrap();
        assert_eq!(queue.status(&running), Some(JobStatus::Succeeded { result: "finished cleanly".into() }));
        assert!(matches!(queue.status(&queued), Some(JobStatus::Failed { error }) if error.contains("shutting down")));
        assert!(queue.submit(Box::new(|| Box::pin(async { Ok(String::new()) }))).is_err(), "no jobs after shutdown");
    }

    #[tokio::test]
    async fn old_results_are_forgotten_beyond_the_limit() {
        let (queue, worker) = JobQueue::new(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let ids: Vec<JobId> =
            ["a", "b", "c"].into_iter().map(|n| queue.submit(job(log.clone(), n, false)).unwrap()).collect();
        let handle = tokio::spawn(worker.run(std::future::pending()));
        queue.wait(&ids[2]).await;
        assert_eq!(queue.status(&ids[0]), None, "the oldest finished job is forgotten");
        assert!(queue.status(&ids[1]).is_some());
        drop(queue);
        handle.await.unwrap();
    }
}
