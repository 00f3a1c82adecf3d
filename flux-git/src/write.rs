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

/// How the commit is dressed: signing and the ci-skip text.
pub(crate) struct CommitStyle<'a> {
    pub(crate) signing: Option<&'a Signing>,
    pub(crate) ci_skip_message: Option<&'a str>,
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
    let message = match style.ci_skip_message {
        Some(text) => with_ci_skip(&request.message, text),
        None => request.message.clone(),
    };
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
        let signature = sign(signing, &payload, "the commit")?;
        commit.extra_headers.push(("gpgsig".into(), signature.trim_end().into()));
    }
    let id = repo.write_object(&commit).map_err(|e| local_error("writing the commit", &e))?;
    Ok(Built::Commit(id.detach()))
}

/// Whether every line of `paragraph` is a `Token: value` trailer.
fn is_trailer_block(paragraph: &str) -> bool {
    let trailer = |line: &str| {
        line.split_once(": ")
            .is_some_and(|(key, _)| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    };
    !paragraph.trim().is_empty() && paragraph.trim().lines().all(trailer)
}

/// `message` with `text` as a paragraph of its own before its trailers (or at its end when it has
/// none), so `git interpret-trailers` still finds them; unchanged when it already holds `text`.
pub(crate) fn with_ci_skip(message: &str, text: &str) -> String {
    if message.contains(text) {
        return message.to_owned();
    }
    let body = message.trim_end();
    match body.rsplit_once("\n\n") {
        Some((head, last)) if is_trailer_block(last) => format!("{}\n\n{text}\n\n{last}\n", head.trim_end()),
        _ if body.is_empty() => format!("{text}\n"),
        _ => format!("{body}\n\n{text}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_ci_skip;

    #[test]
    fn the_ci_skip_text_goes_before_the_trailers() {
        let m = "Release web\n\n - a (b): x -> y\n\nFlux-Change: release\nFlux-Job: j1\n";
        assert_eq!(
            with_ci_skip(m, "[ci skip]"),
            "Release web\n\n - a (b): x -> y\n\n[ci skip]\n\nFlux-Change: release\nFlux-Job: j1\n"
        );
        assert_eq!(with_ci_skip("Update x", "**SKIP**"), "Update x\n\n**SKIP**\n");
        let once = with_ci_skip(m, "[ci skip]");
        assert_eq!(with_ci_skip(&once, "[ci skip]"), once, "never twice");
    }
}
