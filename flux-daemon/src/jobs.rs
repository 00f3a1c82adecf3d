//! Jobs: releases, policy changes, syncs and automation passes run one at a time per unit, each
//! with an id and a status that can be asked for while it is queued, running or done.
//!
//! One [`JobQueue`] per unit serialises everything that writes to its branch, so two jobs never
//! race each other. Different units' queues run in parallel, bounded by a [`Semaphore`] they
//! share ([`JobWorker::run`]). The queue is runtime-agnostic: [`JobQueue::new`] returns the queue
//! (cheap to clone, for the API handlers) and a [`JobWorker`] whose `run` future the caller spawns.
//!
//! Ids are unique across restarts (the process's start time and a counter), and are handed to
//! the job's work, which writes them into its commits (`Flux-Job: <id>`). With a journal
//! ([`JobQueue::with_journal`]) the statuses of the last finished jobs are kept in a small JSON
//! file, rewritten (atomically) after each job, and read back at start: a client can still ask
//! for a job's result after a restart. Jobs queued or running when the process stopped are
//! recorded as failed ("interrupted").

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flux_core::{Error, Result};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// A job's id: unique across the daemon's restarts, ordered by submission within one run.
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// Done, with an error (its kind and location kept, also in the journal).
    Failed {
        /// Why.
        error: Error,
    },
}

impl<R: PartialEq> PartialEq for JobStatus<R> {
    /// Equal states; errors are equal when their kind and text are.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (JobStatus::Queued, JobStatus::Queued) | (JobStatus::Running, JobStatus::Running) => true,
            (JobStatus::Succeeded { result: a }, JobStatus::Succeeded { result: b }) => a == b,
            (JobStatus::Failed { error: a }, JobStatus::Failed { error: b }) => {
                a.kind() == b.kind() && a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

impl<R> JobStatus<R> {
    /// Whether the job has finished, either way.
    pub fn is_done(&self) -> bool {
        matches!(self, JobStatus::Succeeded { .. } | JobStatus::Failed { .. })
    }
}

/// A job's work, given its id (to write into its commits).
pub type JobFn<R> = Box<dyn FnOnce(JobId) -> BoxFuture<'static, Result<R>> + Send>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared<R> {
    statuses: Mutex<Statuses<R>>,
    changed: Notify,
    prefix: String,
    next: AtomicU64,
    retain: usize,
    journal: Option<PathBuf>,
    /// Counts status changes, for watchers (the status page's live updates).
    generation: watch::Sender<u64>,
}

struct Statuses<R> {
    by_id: BTreeMap<JobId, JobStatus<R>>,
    finished: VecDeque<JobId>,
}

/// What the journal file holds: the last finished jobs, oldest first.
#[derive(serde::Serialize, serde::Deserialize)]
struct Journal<R> {
    jobs: Vec<(JobId, JobStatus<R>)>,
}

impl<R: Clone + Serialize> Shared<R> {
    fn set(&self, id: &JobId, status: JobStatus<R>) {
        let mut s = lock(&self.statuses);
        let done = status.is_done();
        if done {
            s.finished.push_back(id.clone());
            while s.finished.len() > self.retain {
                if let Some(old) = s.finished.pop_front() {
                    s.by_id.remove(&old);
                }
            }
        }
        s.by_id.insert(id.clone(), status);
        if done {
            self.write_journal(&s);
        }
        drop(s);
        self.changed.notify_waiters();
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Rewrites the journal (a temporary file renamed over it: never half-written). A failure is
    /// logged: the job's result is still answered from memory.
    fn write_journal(&self, s: &Statuses<R>) {
        let Some(path) = &self.journal else { return };
        let jobs: Vec<(JobId, JobStatus<R>)> =
            s.finished.iter().filter_map(|id| Some((id.clone(), s.by_id.get(id)?.clone()))).collect();
        let written = serde_json::to_vec(&Journal { jobs }).map_err(std::io::Error::other).and_then(|bytes| {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, journal = %path.display(), "cannot write the job journal");
        }
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

/// The part of every id that differs between runs: the start time, in microseconds, in hex.
fn run_prefix() -> String {
    format!("{:x}", jiff::Timestamp::now().as_microsecond())
}

impl<R: Clone + Send + Serialize + DeserializeOwned + 'static> JobQueue<R> {
    /// A queue that remembers the statuses of the last `retain` finished jobs, in memory only.
    pub fn new(retain: usize) -> (JobQueue<R>, JobWorker<R>) {
        Self::build(retain, None, BTreeMap::new(), VecDeque::new())
    }

    /// A queue that also keeps the statuses of the last `retain` finished jobs in the file
    /// `journal` (created if missing; its directory must exist), and starts with those it holds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file when it exists but cannot be read as a journal
    /// (it is left as it is, for a person to look at); [`Error::Other`] when it cannot be read.
    pub fn with_journal(retain: usize, journal: &Path) -> Result<(JobQueue<R>, JobWorker<R>)> {
        let mut by_id = BTreeMap::new();
        let mut finished = VecDeque::new();
        match std::fs::read(journal) {
            Ok(bytes) => {
                let read: Journal<R> = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::invalid(
                        flux_core::Location::file(journal.display().to_string()),
                        format!("not a job journal: {e}"),
                    )
                })?;
                for (id, status) in read.jobs {
                    let status = match status {
                        done if done.is_done() => done,
                        _ => JobStatus::Failed { error: Error::other("interrupted: the daemon stopped") },
                    };
                    finished.push_back(id.clone());
                    by_id.insert(id, status);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::other(format!("cannot read the job journal {}: {e}", journal.display()))),
        }
        Ok(Self::build(retain, Some(journal.to_owned()), by_id, finished))
    }

    fn build(
        retain: usize,
        journal: Option<PathBuf>,
        by_id: BTreeMap<JobId, JobStatus<R>>,
        finished: VecDeque<JobId>,
    ) -> (JobQueue<R>, JobWorker<R>) {
        let shared = Arc::new(Shared {
            statuses: Mutex::new(Statuses { by_id, finished }),
            changed: Notify::new(),
            prefix: run_prefix(),
            next: AtomicU64::new(1),
            retain: retain.max(1),
            journal,
            generation: watch::channel(0).0,
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
        let id = JobId(format!("{}-{n}", self.shared.prefix));
        self.shared.set(&id, JobStatus::Queued);
        self.sender.send((id.clone(), job)).map_err(|_| {
            self.shared.set(&id, JobStatus::Failed { error: Error::other("the job queue has stopped") });
            Error::other("the job queue has stopped; no new jobs are taken")
        })?;
        Ok(id)
    }

    /// A job's status, or `None` if the id is unknown (or finished long ago and forgotten).
    pub fn status(&self, id: &JobId) -> Option<JobStatus<R>> {
        lock(&self.shared.statuses).by_id.get(id).cloned()
    }

    /// Every job it knows: those queued or running first, in submission order, then the
    /// finished ones it remembers, newest first.
    pub fn jobs(&self) -> Vec<(JobId, JobStatus<R>)> {
        let s = lock(&self.shared.statuses);
        let mut pending: Vec<(JobId, JobStatus<R>)> =
            s.by_id.iter().filter(|(_, st)| !st.is_done()).map(|(id, st)| (id.clone(), st.clone())).collect();
        // Ids are `<run>-<n>`: order by run, then by n as a number.
        pending.sort_by_key(|(id, _)| {
            let (run, n) = id.0.rsplit_once('-').unwrap_or((&id.0, ""));
            (run.to_owned(), n.parse::<u64>().unwrap_or(u64::MAX))
        });
        let finished = s.finished.iter().rev().filter_map(|id| Some((id.clone(), s.by_id.get(id)?.clone())));
        pending.extend(finished);
        pending
    }

    /// A receiver whose value changes whenever a job's status does (queued, running, done).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
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

impl<R: Clone + Send + Serialize + 'static> JobWorker<R> {
    /// Runs jobs in submission order, one at a time, until every [`JobQueue`] handle is dropped
    /// or `shutdown` completes; each job first takes a permit of `parallel` (shared by the
    /// workers of every unit: what bounds how many units write at once). On shutdown the running
    /// job finishes (a job is never abandoned halfway through a write); jobs still queued are
    /// marked failed.
    pub async fn run(mut self, parallel: Arc<Semaphore>, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => None,
                next = self.receiver.recv() => next,
            };
            let Some((id, job)) = next else { break };
            let status = match parallel.clone().acquire_owned().await {
                Ok(_permit) => {
                    self.shared.set(&id, JobStatus::Running);
                    match job(id.clone()).await {
                        Ok(result) => JobStatus::Succeeded { result },
                        Err(error) => JobStatus::Failed { error },
                    }
                }
                Err(_) => JobStatus::Failed { error: Error::other("cancelled: the daemon is shutting down") },
            };
            self.shared.set(&id, status);
        }
        self.receiver.close();
        while let Ok((id, _)) = self.receiver.try_recv() {
            self.shared.set(&id, JobStatus::Failed { error: Error::other("cancelled: the daemon is shutting down") });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn one() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(1))
    }

    fn job(log: Arc<Mutex<Vec<String>>>, name: &'static str, fail: bool) -> JobFn<String> {
        Box::new(move |_| {
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
        let handle = tokio::spawn(worker.run(one(), std::future::pending()));
        assert_eq!(queue.wait(&a).await, Some(JobStatus::Succeeded { result: "a done".into() }));
        assert_eq!(queue.wait(&b).await, Some(JobStatus::Failed { error: Error::other("b broke") }));
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
            .submit(Box::new(move |_| {
                Box::pin(async move {
                    let _ = started_tx.send(());
                    let _ = release_rx.await;
                    Ok("finished cleanly".to_string())
                })
            }))
            .unwrap();
        let queued = queue.submit(Box::new(|_| Box::pin(async { Ok("never".to_string()) }))).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(one(), async move {
            let _ = stop_rx.await;
        }));
        started_rx.await.unwrap();
        stop_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        handle.await.unwrap();
        assert_eq!(queue.status(&running), Some(JobStatus::Succeeded { result: "finished cleanly".into() }));
        assert!(
            matches!(queue.status(&queued), Some(JobStatus::Failed { error }) if error.to_string().contains("shutting down"))
        );
        assert!(queue.submit(Box::new(|_| Box::pin(async { Ok(String::new()) }))).is_err(), "no jobs after shutdown");
    }

    #[tokio::test]
    async fn jobs_are_listed_pending_in_order_then_finished_newest_first_and_watched() {
        let (queue, worker) = JobQueue::<String>::new(20);
        let changes = queue.subscribe();
        let ids: Vec<JobId> =
            (0..12).map(|_| queue.submit(Box::new(|_| Box::pin(async { Ok(String::new()) }))).unwrap()).collect();
        assert!(changes.has_changed().unwrap(), "submitting is a change");
        let listed: Vec<JobId> = queue.jobs().into_iter().map(|(id, _)| id).collect();
        assert_eq!(listed, ids, "pending jobs in submission order (job 10 after job 9)");
        let handle = tokio::spawn(worker.run(one(), std::future::pending()));
        queue.wait(&ids[11]).await;
        let listed: Vec<JobId> = queue.jobs().into_iter().map(|(id, _)| id).collect();
        let newest_first: Vec<JobId> = ids.iter().rev().cloned().collect();
        assert_eq!(listed, newest_first, "finished jobs newest first");
        drop(queue);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn old_results_are_forgotten_beyond_the_limit() {
        let (queue, worker) = JobQueue::new(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let ids: Vec<JobId> =
            ["a", "b", "c"].into_iter().map(|n| queue.submit(job(log.clone(), n, false)).unwrap()).collect();
        let handle = tokio::spawn(worker.run(one(), std::future::pending()));
        queue.wait(&ids[2]).await;
        assert_eq!(queue.status(&ids[0]), None, "the oldest finished job is forgotten");
        assert!(queue.status(&ids[1]).is_some());
        drop(queue);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn ids_are_handed_to_the_work_and_results_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = dir.path().join("jobs.json");
        let (queue, worker) = JobQueue::<String>::with_journal(2, &journal).expect("journal");
        let handle = tokio::spawn(worker.run(one(), std::future::pending()));
        let ids: Vec<JobId> = ["a", "b", "c"]
            .into_iter()
            .map(|n| queue.submit(Box::new(move |id| Box::pin(async move { Ok(format!("{n} as {id}")) }))).unwrap())
            .collect();
        let last = queue.wait(&ids[2]).await;
        assert_eq!(last, Some(JobStatus::Succeeded { result: format!("c as {}", ids[2]) }), "the work gets its id");
        drop(queue);
        handle.await.unwrap();

        let (again, _worker) = JobQueue::<String>::with_journal(2, &journal).expect("journal read back");
        assert_eq!(again.status(&ids[2]), Some(JobStatus::Succeeded { result: format!("c as {}", ids[2]) }));
        assert!(again.status(&ids[1]).is_some());
        assert_eq!(again.status(&ids[0]), None, "the journal is bounded");
        let next = again.submit(Box::new(|_| Box::pin(async { Ok(String::new()) }))).unwrap();
        assert!(!ids.contains(&next), "a new run never reuses an id: {next} vs {ids:?}");

        std::fs::write(&journal, "not json").unwrap();
        let broken = JobQueue::<String>::with_journal(2, &journal).expect_err("a broken journal is refused");
        assert!(broken.to_string().contains("jobs.json"), "{broken}");
    }

    #[tokio::test]
    async fn the_shared_permits_bound_how_many_queues_run_at_once() {
        let parallel = Arc::new(Semaphore::new(1));
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let (queue, worker) = JobQueue::<String>::new(10);
            handles.push(tokio::spawn(worker.run(parallel.clone(), std::future::pending())));
            let (running, most) = (running.clone(), most.clone());
            let id = queue
                .submit(Box::new(move |_| {
                    Box::pin(async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(String::new())
                    })
                }))
                .unwrap();
            waits.push((queue, id));
        }
        for (queue, id) in &waits {
            assert!(matches!(queue.wait(id).await, Some(JobStatus::Succeeded { .. })));
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one permit: one job at a time across the queues");
        drop(waits);
        for h in handles {
            h.await.unwrap();
        }
    }
}
