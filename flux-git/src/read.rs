//! Reading files at a revision straight from the object database: no checkout, no work tree.
//! Symbolic links are never followed out of the repository.

use std::collections::BTreeMap;

use flux_core::source::normalize_path;
use flux_core::{Error, Location, Result, SourceFile};
use gix::ObjectId;
use gix::objs::tree::EntryKind;

use crate::errors::local_error;

/// How many links a path may go through before it is refused as a loop.
const MAX_LINK_HOPS: usize = 16;

/// The root tree of commit `id`, or `NotFound` when the mirror has no such commit.
pub(crate) fn root_tree(repo: &gix::Repository, id: ObjectId) -> Result<gix::Tree<'_>> {
    let commit = repo.find_commit(id).map_err(|_| Error::not_found(format!("revision {id}")))?;
    commit.tree().map_err(|e| local_error(&format!("reading the tree of {id}"), &e))
}

/// What a path names in a tree, after following in-repository links.
enum Found {
    File(ObjectId),
    Dir(ObjectId),
}

/// Every regular file under `paths` (or the root when empty), sorted and deduplicated.
pub(crate) fn files(repo: &gix::Repository, id: ObjectId, paths: &[String]) -> Result<Vec<SourceFile>> {
    let root = root_tree(repo, id)?;
    let roots: Vec<String> = if paths.is_empty() { vec![String::new()] } else { paths.to_vec() };
    let mut out = BTreeMap::new();
    for given in &roots {
        let path = normalize_path(given)?;
        match resolve(repo, &root, &path, id)? {
            Found::File(blob) => {
                out.insert(path.clone(), blob);
            }
            Found::Dir(tree) => collect(repo, tree, &path, &mut out)?,
        }
    }
    out.into_iter().map(|(path, blob)| Ok(SourceFile { content: read_blob(repo, blob, &path)?, path })).collect()
}

/// One file's bytes at revision `id`.
pub(crate) fn read_file(repo: &gix::Repository, id: ObjectId, path: &str) -> Result<Vec<u8>> {
    let root = root_tree(repo, id)?;
    let path = normalize_path(path)?;
    match resolve(repo, &root, &path, id)? {
        Found::File(blob) => read_blob(repo, blob, &path),
        Found::Dir(_) => Err(Error::not_found(format!("file {path} at {id} (it is a directory)"))),
    }
}

/// Looks `path` up in `root`, following links (relative to their directory) as long as they stay
/// inside the repository.
fn resolve(repo: &gix::Repository, root: &gix::Tree<'_>, path: &str, id: ObjectId) -> Result<Found> {
    if path.is_empty() {
        return Ok(Found::Dir(root.id));
    }
    let mut current = path.to_owned();
    for _ in 0..MAX_LINK_HOPS {
        // Walk component by component so a link in the middle of the path is caught too.
        let parts: Vec<&str> = current.split('/').collect();
        let mut tree = root.clone();
        let mut next = None;
        for (i, part) in parts.iter().enumerate() {
            let entry = tree
                .find_entry(*part)
                .map(|e| (e.mode().kind(), e.object_id()))
                .ok_or_else(|| Error::not_found(format!("path {path} at {id}")))?;
            let last = i + 1 == parts.len();
            match entry {
                (EntryKind::Link, blob) => {
                    let target = read_blob(repo, blob, path)?;
                    let dir = parts[..i].join("/");
                    let rest = parts[i + 1..].join("/");
                    next = Some(link_target(&dir, &target, &rest, path)?);
                    break;
                }
                (EntryKind::Tree, tree_id) if last => return Ok(Found::Dir(tree_id)),
                (EntryKind::Tree, tree_id) => {
                    tree = repo.find_tree(tree_id).map_err(|e| local_error(&format!("reading {path}"), &e))?;
                }
                (EntryKind::Blob | EntryKind::BlobExecutable, blob) if last => return Ok(Found::File(blob)),
                _ => return Err(Error::not_found(format!("path {path} at {id}"))),
            }
        }
        match next {
            Some(target) if target.is_empty() => return Ok(Found::Dir(root.id)),
            Some(target) => current = target,
            None => return Err(Error::not_found(format!("path {path} at {id}"))),
        }
    }
    Err(Error::invalid(Location::file(path), "too many levels of symbolic links"))
}

/// Where a link in `dir` with `target` leads, continued by `rest`; refused when it leaves the
/// repository.
fn link_target(dir: &str, target: &[u8], rest: &str, path: &str) -> Result<String> {
    let outside = || Error::invalid(Location::file(path), "a symbolic link points outside the repository");
    let target = std::str::from_utf8(target).map_err(|_| outside())?;
    if target.starts_with('/') {
        return Err(outside());
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/').chain(rest.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(outside)?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Adds every regular file below `tree` (at `prefix`) to `out`. Links inside a directory are
/// not regular files and are left out, unless they point outside, which is refused.
fn collect(repo: &gix::Repository, tree: ObjectId, prefix: &str, out: &mut BTreeMap<String, ObjectId>) -> Result<()> {
    let tree = repo.find_tree(tree).map_err(|e| local_error(&format!("reading {prefix}"), &e))?;
    let entries = tree.traverse().breadthfirst.files().map_err(|e| local_error(&format!("listing {prefix}"), &e))?;
    for entry in entries {
        let rel = entry.filepath.to_string();
        let path = if prefix.is_empty() { rel.clone() } else { format!("{prefix}/{rel}") };
        match entry.mode.kind() {
            EntryKind::Blob | EntryKind::BlobExecutable => {
                out.insert(path, entry.oid);
            }
            EntryKind::Link => {
                let target = read_blob(repo, entry.oid, &path)?;
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                link_target(dir, &target, "", &path)?;
            }
            EntryKind::Tree | EntryKind::Commit => {}
        }
    }
    Ok(())
}

fn read_blob(repo: &gix::Repository, blob: ObjectId, path: &str) -> Result<Vec<u8>> {
    let object = repo.find_object(blob).map_err(|e| local_error(&format!("reading {path}"), &e))?;
    Ok(object.detach().data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_inside() {
        assert_eq!(link_target("apps/web", b"../common/x.yaml", "", "p").unwrap(), "apps/common/x.yaml");
        assert_eq!(link_target("", b"apps", "web.yaml", "p").unwrap(), "apps/web.yaml");
        for bad in [&b"../../etc/passwd"[..], b"/etc/passwd"] {
            assert!(matches!(link_target("apps", bad, "", "p"), Err(Error::InvalidInput { .. })));
        }
    }
}
