use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::error::{Error, Result};
use crate::source::{Author, CommitRequest, Revision, Source, SourceFile, normalize_path, path_is_under};

type Tree = Arc<BTreeMap<String, Vec<u8>>>;

/// One revision of a [`MemorySource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCommit {
    /// Its id.
    pub revision: Revision,
    /// The revision it was made on, `None` for the first.
    pub parent: Option<Revision>,
    /// Who made it.
    pub author: Author,
    /// Its message.
    pub message: String,
}

#[derive(Default)]
struct Repo {
    trees: HashMap<Revision, Tree>,
    commits: HashMap<Revision, MemoryCommit>,
    head: Option<Revision>,
    marker: Option<Revision>,
    next_id: u64,
}

impl Repo {
    fn tree(&self, revision: &Revision) -> Result<&Tree> {
        self.trees.get(revision).ok_or_else(|| Error::not_found(format!("revision {revision}")))
    }
}

/// A [`Source`] kept in memory: a linear history of file trees, a head and a sync marker.
///
/// Clones are handles on the same repository, like two clones of one git remote, so two clones
/// racing to commit on the same base see one succeed and one get [`Error::Conflict`].
#[derive(Clone, Default)]
pub struct MemorySource {
    repo: Arc<Mutex<Repo>>,
    read_only: bool,
}

impl std::fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let repo = lock(&self.repo);
        f.debug_struct("MemorySource").field("head", &repo.head).field("read_only", &self.read_only).finish()
    }
}

impl MemorySource {
    /// A repository whose first revision holds `files` (path, content).
    pub fn with_files<P: Into<String>, C: Into<Vec<u8>>>(files: impl IntoIterator<Item = (P, C)>) -> Result<Self> {
        let source = MemorySource::default();
        let mut tree = BTreeMap::new();
        for (path, content) in files {
            tree.insert(normalize_path(&path.into())?, content.into());
        }
        let mut repo = lock(&source.repo);
        let message = "Initial revision".to_owned();
        let revision = repo.record(None, tree, Author::default(), message);
        repo.head = Some(revision);
        drop(repo);
        Ok(source)
    }

    /// A handle on the same repository that refuses every write.
    pub fn read_only(&self) -> Self {
        MemorySource { repo: self.repo.clone(), read_only: true }
    }

    /// The history from head back to the first revision, newest first.
    pub fn log(&self) -> Vec<MemoryCommit> {
        let repo = lock(&self.repo);
        let mut out = Vec::new();
        let mut at = repo.head.clone();
        while let Some(rev) = at {
            let Some(commit) = repo.commits.get(&rev) else { break };
            at = commit.parent.clone();
            out.push(commit.clone());
        }
        out
    }

    /// Moves the head, as a push by someone else would (for tests of concurrent writers).
    pub fn push_external(&self, changes: &[crate::source::FileChange], message: &str) -> Result<Revision> {
        let mut repo = lock(&self.repo);
        let base = repo.head.clone().ok_or_else(|| Error::not_found("head revision"))?;
        let tree = apply_changes(repo.tree(&base)?, changes)?;
        let revision = repo.record(Some(base), tree, Author::new("someone", "someone@example.com"), message.to_owned());
        repo.head = Some(revision.clone());
        Ok(revision)
    }
}

impl Repo {
    fn record(
        &mut self,
        parent: Option<Revision>,
        tree: BTreeMap<String, Vec<u8>>,
        author: Author,
        message: String,
    ) -> Revision {
        self.next_id += 1;
        // Git-like ids whose short forms differ: a hash of the counter and parent, then the counter.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(self.next_id, &parent), &mut h);
        let revision = Revision::new(format!("{:016x}{:024x}", std::hash::Hasher::finish(&h), self.next_id));
        self.trees.insert(revision.clone(), Arc::new(tree));
        self.commits.insert(revision.clone(), MemoryCommit { revision: revision.clone(), parent, author, message });
        revision
    }
}

fn apply_changes(tree: &Tree, changes: &[crate::source::FileChange]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut tree = (**tree).clone();
    for change in changes {
        let path = normalize_path(&change.path)?;
        if path.is_empty() {
            return Err(Error::invalid(crate::Location::file(&change.path), "cannot write the repository root"));
        }
        match &change.content {
            Some(content) => {
                tree.insert(path, content.clone());
            }
            None => {
                tree.remove(&path).ok_or_else(|| Error::not_found(format!("file {path} to delete")))?;
            }
        }
    }
    Ok(tree)
}

#[async_trait]
impl Source for MemorySource {
    async fn refresh(&self) -> Result<Revision> {
        lock(&self.repo).head.clone().ok_or_else(|| Error::not_found("head revision"))
    }

    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>> {
        let repo = lock(&self.repo);
        let tree = repo.tree(revision)?;
        let dirs = if paths.is_empty() {
            vec![String::new()]
        } else {
            paths.iter().map(|p| normalize_path(p)).collect::<Result<_>>()?
        };
        for dir in &dirs {
            if !tree.keys().any(|f| path_is_under(f, dir)) {
                return Err(Error::not_found(format!("path {dir:?} at revision {}", revision.short())));
            }
        }
        Ok(tree
            .iter()
            .filter(|(f, _)| dirs.iter().any(|d| path_is_under(f, d)))
            .map(|(path, content)| SourceFile { path: path.clone(), content: content.clone() })
            .collect())
    }

    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>> {
        let path = normalize_path(path)?;
        let repo = lock(&self.repo);
        repo.tree(revision)?
            .get(&path)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("file {path} at revision {}", revision.short())))
    }

    async fn commit(&self, request: &CommitRequest) -> Result<Revision> {
        if self.read_only {
            return Err(Error::unauthorized("the source is read-only"));
        }
        let mut repo = lock(&self.repo);
        let head = repo.head.clone().ok_or_else(|| Error::not_found("head revision"))?;
        if head != request.base {
            return Err(Error::conflict(format!("head moved from {} to {}", request.base.short(), head.short())));
        }
        let base_tree = repo.tree(&head)?.clone();
        let tree = apply_changes(&base_tree, &request.changes)?;
        if tree == *base_tree {
            return Ok(head);
        }
        let revision = repo.record(Some(head), tree, request.author.clone(), request.message.clone());
        repo.head = Some(revision.clone());
        Ok(revision)
    }

    async fn sync_marker(&self) -> Result<Option<Revision>> {
        Ok(lock(&self.repo).marker.clone())
    }

    async fn set_sync_marker(&self, revision: &Revision) -> Result<()> {
        if self.read_only {
            return Err(Error::unauthorized("the source is read-only"));
        }
        let mut repo = lock(&self.repo);
        repo.tree(revision)?;
        repo.marker = Some(revision.clone());
        Ok(())
    }
}
