//! [`GitSource`]: flux-core's `Source` over a git remote.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flux_core::{CommitRequest, Error, Result, Revision, Source, SourceFile};
use gix::ObjectId;

use crate::config::GitConfig;
use crate::errors::{join_error, local_error};
use crate::fetch::{self, Counters, RefNames};
use crate::mirror::{Mirror, parse_revision, read_ref, write_ref};
use crate::push::{GitCli, Pusher, RefUpdate};
use crate::remote::Remote;
use crate::write::{Built, CommitStyle};
use crate::{read, verify};

/// A git repository as a [`Source`]: one branch of one remote, mirrored in a local bare
/// repository. Cheap to clone; clones share the mirror.
///
/// Fetches and reads use gix (on `spawn_blocking`); pushes use the `git` command line with a
/// lease, so a concurrent writer is never overwritten.
#[derive(Clone)]
pub struct GitSource {
    inner: Arc<Inner>,
}

struct Inner {
    config: GitConfig,
    remote: Remote,
    names: RefNames,
    mirror: Mirror,
    git: GitCli,
    pusher: Box<dyn Pusher>,
    counters: Counters,
    /// Serialises this handle's ref updates (refresh, commit, marker). Held by the blocking task
    /// itself, so a refresh the caller stopped waiting for still excludes the next one.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// Commits whose signatures were already verified.
    verified: Mutex<HashSet<ObjectId>>,
    /// The full notes ref, when notes are written.
    notes_ref: Option<String>,
}

/// How much network work a source has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Ref listings (one request each): every refresh makes one.
    pub ref_listings: u64,
    /// Fetches that received a pack: made only when the branch or marker moved to commits the
    /// mirror did not have.
    pub pack_fetches: u64,
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &self.inner.remote.url)
            .field("branch", &self.inner.config.branch)
            .field("read_only", &self.inner.config.read_only)
            .finish_non_exhaustive()
    }
}

impl GitSource {
    /// Opens (or creates) the local mirror for `config`. Nothing is fetched until
    /// [`Source::refresh`].
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL, branch or tag name; `Other` when the mirror cannot be
    /// created.
    pub fn open(config: GitConfig) -> Result<Self> {
        let mut remote = Remote::parse(&config)?;
        let names = RefNames::new(&config.branch, &config.sync_tag)?;
        let notes_ref = config.notes_ref.as_deref().map(crate::notes::full_ref).transpose()?;
        let mirror = Mirror::open(&config, &mut remote)?;
        let git = GitCli {
            git: config.git_program.clone(),
            remote: remote.clone(),
            ssh_command: mirror.ssh_command.clone(),
            timeout: config.timeout,
        };
        // Pushing goes through the trait so a gix implementation can replace the CLI here.
        let pusher: Box<dyn Pusher> = Box::new(git.clone());
        Ok(GitSource {
            inner: Arc::new(Inner {
                config,
                remote,
                names,
                mirror,
                git,
                pusher,
                counters: Counters::default(),
                writing: Arc::new(tokio::sync::Mutex::new(())),
                verified: Mutex::new(HashSet::new()),
                notes_ref,
            }),
        })
    }

    /// The remote URL, without any password.
    pub fn url(&self) -> &str {
        &self.inner.remote.url
    }

    /// Requests made to the remote so far.
    pub fn fetch_stats(&self) -> FetchStats {
        FetchStats {
            ref_listings: self.inner.counters.ref_listings.load(Ordering::Relaxed),
            pack_fetches: self.inner.counters.pack_fetches.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` with the mirror on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &gix::Repository) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let repo = inner.mirror.repo();
            f(&inner, &repo)
        })
        .await
        .map_err(join_error)?
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<()> {
        if self.inner.config.read_only {
            return Err(Error::unauthorized(format!("{what}: the git source {} is read-only", self.inner.remote.url)));
        }
        Ok(())
    }
}

impl Inner {
    fn verify(&self, repo: &gix::Repository, head: ObjectId, marker: Option<ObjectId>) -> Result<()> {
        let commits = verify::commits_to_check(repo, head, self.config.verify, marker)?;
        let mut verified = self.verified.lock().map_err(|_| Error::other("signature cache poisoned"))?;
        verify::verify(&self.git, self.mirror.dir(), &self.config.trusted_keys, &commits, &mut verified)
    }
}

#[async_trait]
impl Source for GitSource {
    async fn refresh(&self) -> Result<Revision> {
        let writing = Arc::clone(&self.inner.writing).lock_owned().await;
        let interrupt = Arc::new(AtomicBool::new(false));
        let timeout = self.inner.config.timeout;
        let inner = Arc::clone(&self.inner);
        let raised = Arc::clone(&interrupt);
        let fetching = tokio::task::spawn_blocking(move || {
            let _writing = writing;
            let repo = inner.mirror.repo();
            let (remote, names) = (&inner.remote, &inner.names);
            let tips = fetch::refresh(&repo, remote, names, inner.config.depth, &inner.counters, timeout, &raised)?;
            Ok::<_, Error>(tips)
        });
        // Every read of the transports gives up after `timeout` too (see `fetch`), so the task
        // ends soon after; the interrupt ends a transfer that is slow rather than silent.
        let tips = match tokio::time::timeout(timeout, fetching).await {
            Ok(joined) => joined.map_err(join_error)??,
            Err(_) => {
                interrupt.store(true, Ordering::Relaxed);
                let what = format!("fetching {} from {}", self.inner.names.branch, self.inner.remote.url);
                return Err(crate::push::timed_out(&what, timeout));
            }
        };
        let _writing = self.inner.writing.lock().await;
        self.blocking(move |inner, repo| {
            inner.mirror.compact_if_needed(&inner.config.git_program)?;
            inner.verify(repo, tips.head, tips.marker)?;
            Ok(Revision::new(tips.head.to_string()))
        })
        .await
    }

    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>> {
        let id = parse_revision(revision)?;
        let paths = paths.to_vec();
        self.blocking(move |_, repo| read::files(repo, id, &paths)).await
    }

    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>> {
        let id = parse_revision(revision)?;
        let path = path.to_owned();
        self.blocking(move |_, repo| read::read_file(repo, id, &path)).await
    }

    async fn commit(&self, request: &CommitRequest) -> Result<Revision> {
        self.refuse_if_read_only("commit")?;
        let base = parse_revision(&request.base)?;
        let request = request.clone();
        let _writing = self.inner.writing.lock().await;
        self.blocking(move |inner, repo| {
            let style = CommitStyle {
                signing: inner.config.signing.as_ref(),
                ci_skip_message: inner.config.ci_skip_message.as_deref(),
            };
            let new = match crate::write::build(repo, base, &request, &style)? {
                Built::Unchanged => return Ok(request.base.clone()),
                Built::Commit(id) => id,
            };
            // The lease makes the remote refuse the update unless the branch is still at base;
            // on refusal no local ref has moved, so the next attempt starts from the fetched head.
            let update = RefUpdate { name: inner.names.branch.clone(), new, expected: Some(base), fast_forward_only: true };
            inner.pusher.push(inner.mirror.dir(), &update)?;
            write_ref(repo, &inner.names.tracking, new)?;
            tracing::info!(url = %inner.remote.url, revision = %new, "committed and pushed");
            if let Some(notes_ref) = &inner.notes_ref {
                let note = crate::notes::note_for(&request.message);
                let identity = &inner.config.identity;
                // The commit is published already: a note that cannot be pushed is reported,
                // never turned into a failed commit (which would be made again).
                if let Err(e) = crate::notes::add_and_push(&inner.git, inner.mirror.dir(), notes_ref, new, &note, identity)
                {
                    tracing::warn!(url = %inner.remote.url, revision = %new, notes_ref, error = %e, "cannot push the git note");
                }
            }
            Ok(Revision::new(new.to_string()))
        })
        .await
    }

    async fn sync_marker(&self) -> Result<Option<Revision>> {
        self.blocking(|inner, repo| Ok(read_ref(repo, &inner.names.tag)?.map(|id| Revision::new(id.to_string())))).await
    }

    async fn set_sync_marker(&self, revision: &Revision) -> Result<()> {
        self.refuse_if_read_only("moving the sync marker")?;
        let id = parse_revision(revision)?;
        let _writing = self.inner.writing.lock().await;
        self.blocking(move |inner, repo| {
            repo.find_commit(id).map_err(|_| Error::not_found(format!("revision {id}")))?;
            let tag = crate::tag::annotated(
                repo,
                &inner.config.sync_tag,
                id,
                &inner.config.identity,
                inner.config.signing.as_ref(),
            )?;
            let update =
                RefUpdate { name: inner.names.tag.clone(), new: tag, expected: None, fast_forward_only: false };
            inner.pusher.push(inner.mirror.dir(), &update)?;
            write_ref(repo, &inner.names.tag, id).map_err(|e| local_error("recording the sync marker", &e))
        })
        .await
    }
}
