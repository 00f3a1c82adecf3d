//! Building a commit from a `CommitRequest`: gix's tree editor on the base tree, then a commit
//! object (signed when configured). Nothing here touches refs or the remote.

use std::collections::HashMap;

use flux_core::source::normalize_path;
use flux_core::{CommitRequest, Error, Location, Result};
use gix::ObjectId;
use gix::objs::tree::EntryKind;

use crate::config::Signing;
use crate::errors::local_error;
use crate::read::root_tree;
use crate::sign::sign;

/// What a request amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Built {
    /// Every file stays as it was: nothing to publish.
    Unchanged,
    /// A new commit whose parent is the base, written to the mirror's object database.
    Commit(ObjectId),
}

/// How the commit is dressed: signing and `[ci skip]`.
pub(crate) struct CommitStyle<'a> {
    pub(crate) signing: Option<&'a Signing>,
    pub(crate) skip_ci: bool,
}

/// Applies `request.changes` to the tree of `base` and writes the commit (not yet published).
pub(crate) fn build(
    repo: &gix::Repository,
    base: ObjectId,
    request: &CommitRequest,
    style: &CommitStyle<'_>,
) -> Result<Built> {
    let base_tree = root_tree(repo, base)?;
    let base_tree_id = base_tree.id;
    let mut editor = repo.edit_tree(base_tree_id).map_err(|e| local_error("starting a tree edit", &e))?;
    // Whether each touched path holds a file after the changes so far; untouched paths are
    // looked up in the base tree.
    let mut exists: HashMap<String, bool> = HashMap::new();
    for change in &request.changes {
        let path = normalize_path(&change.path)?;
        if path.is_empty() {
            return Err(Error::invalid(Location::file(&change.path), "a change must name a file, not the root"));
        }
        let base_entry = base_tree
            .lookup_entry_by_path(&path)
            .map_err(|e| local_error(&format!("looking up {path}"), &e))?
            .map(|e| e.mode().kind());
        let present = *exists
            .entry(path.clone())
            .or_insert(matches!(base_entry, Some(EntryKind::Blob | EntryKind::BlobExecutable | EntryKind::Link)));
        let edited = match &change.content {
            Some(content) => {
                let blob = repo.write_blob(content).map_err(|e| local_error(&format!("storing {path}"), &e))?;
                // An executable file stays executable when rewritten.
                let kind = if base_entry == Some(EntryKind::BlobExecutable) {
                    EntryKind::BlobExecutable
                } else {
                    EntryKind::Blob
                };
                exists.insert(path.clone(), true);
                editor.upsert(path.as_str(), kind, blob.detach())
            }
            None if !present => return Err(Error::not_found(format!("file {path} at {base} (cannot delete it)"))),
            None => {
                exists.insert(path.clone(), false);
                editor.remove(path.as_str())
            }
        };
        edited.map_err(|e| Error::invalid(Location::file(&path), format!("cannot change this path: {e:#}")))?;
    }
    let tree = editor.write().map_err(|e| local_error("writing the new tree", &e))?.detach();
    if tree == base_tree_id {
        return Ok(Built::Unchanged);
    }
    let who = gix::actor::Signature {
        name: request.author.name.as_str().into(),
        email: request.author.email.as_str().into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let mut message = request.message.clone();
    if style.skip_ci {
        message.push_str(if message.ends_with('\n') { "\n[ci skip]\n" } else { "\n\n[ci skip]\n" });
    }
    let mut commit = gix::objs::Commit {
        tree,
        parents: [base].into_iter().collect(),
        author: who.clone(),
        committer: who,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    if let Some(signing) = style.signing {
        let mut payload = Vec::new();
        gix::objs::WriteTo::write_to(&commit, &mut payload).map_err(|e| local_error("encoding the commit", &e))?;
        let signature = sign(signing, &payload)?;
        commit.extra_headers.push(("gpgsig".into(), signature.trim_end().into()));
    }
    let id = repo.write_object(&commit).map_err(|e| local_error("writing the commit", &e))?;
    Ok(Built::Commit(id.detach()))
}
