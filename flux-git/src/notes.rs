//! Git notes on the commits a source makes, as Flux v1 wrote them (`git notes --ref=<ref> add`,
//! pushed with the commit): one JSON object per commit naming its job, under
//! `refs/notes/<ref>` (Flux v1's `--git-notes-ref`, default `flux`).
//!
//! The note is made from the commit message flux-core writes: `jobID` from its `Flux-Job:`
//! trailer, `spec.type` from `Flux-Change:` in Flux v1's words (`image` for a release, `auto`
//! for automation, `policy`), `spec.cause` from `Flux-User:` and the first line, and `summary`
//! the message without its trailers (the change list).

use std::path::Path;
use std::time::Duration;

use flux_core::{Author, Error, Result};
use gix::ObjectId;

use crate::push::{GitCli, Pusher, RefUpdate, output_within, timed_out};

/// How many times a note is re-added after another writer moved the notes ref meanwhile.
const ATTEMPTS: usize = 3;

/// The full ref of a notes ref given as Flux v1's flag takes it (`flux` or `refs/notes/flux`).
pub(crate) fn full_ref(name: &str) -> Result<String> {
    let full = if name.starts_with("refs/") { name.to_owned() } else { format!("refs/notes/{name}") };
    gix::refs::FullName::try_from(full.as_str()).map_err(|_| {
        Error::invalid(flux_core::Location::file("git notes ref"), format!("{name:?} is not a valid ref name"))
    })?;
    Ok(full)
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The note for a commit with `message` (see the module documentation).
pub(crate) fn note_for(message: &str) -> String {
    let trailer = |key: &str| {
        message.lines().rev().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    let kind = match trailer("Flux-Change:").as_str() {
        "release" => "image".to_owned(),
        "automation" => "auto".to_owned(),
        other => other.to_owned(),
    };
    let subject = message.lines().next().unwrap_or_default().trim();
    let summary: Vec<&str> = message.lines().filter(|l| !l.starts_with("Flux-")).collect();
    format!(
        "{{\"jobID\":{},\"spec\":{{\"type\":{},\"cause\":{{\"user\":{},\"message\":{}}}}},\"summary\":{}}}",
        json_string(&trailer("Flux-Job:")),
        json_string(&kind),
        json_string(&trailer("Flux-User:")),
        json_string(subject),
        json_string(summary.join("\n").trim()),
    )
}

/// Adds `note` to `commit` under `notes_ref` and pushes the notes ref (a fast-forward of the
/// remote's, fetched first), retrying when another writer moved it meanwhile.
pub(crate) fn add_and_push(
    git: &GitCli,
    mirror: &Path,
    notes_ref: &str,
    commit: ObjectId,
    note: &str,
    identity: &Author,
) -> Result<()> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        fetch(git, mirror, notes_ref)?;
        let new = add(git, mirror, notes_ref, commit, note, identity)?;
        let update = RefUpdate { name: notes_ref.to_owned(), new, expected: None, fast_forward_only: true };
        match git.push(mirror, &update) {
            Ok(()) => return Ok(()),
            Err(e @ Error::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::other("adding a git note: no attempt made")))
}

/// Brings the mirror's notes ref to the remote's (removing it when the remote has none).
fn fetch(git: &GitCli, mirror: &Path, notes_ref: &str) -> Result<()> {
    let mut command = git.command(mirror);
    command.args(["fetch", "--no-tags", "--no-write-fetch-head", "--quiet"]).arg(&git.remote.url);
    command.arg(format!("+{notes_ref}:{notes_ref}"));
    let what = format!("fetching {notes_ref} from {}", git.remote.url);
    git.remote.begin();
    let output = output_within(command, git.timeout)
        .map_err(|e| Error::other(format!("{what}: cannot run git: {e}")))?
        .ok_or_else(|| timed_out(&what, git.timeout))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.to_lowercase().contains("couldn't find remote ref") {
        return local(git, mirror, &["update-ref", "-d", notes_ref], &[]).map(|_| ());
    }
    Err(git.remote.fail(&what, &stderr.trim()))
}

/// Writes the note (replacing one already there) and returns the new notes commit.
fn add(
    git: &GitCli,
    mirror: &Path,
    notes_ref: &str,
    commit: ObjectId,
    note: &str,
    identity: &Author,
) -> Result<ObjectId> {
    let who = [
        ("GIT_AUTHOR_NAME", identity.name.as_str()),
        ("GIT_AUTHOR_EMAIL", identity.email.as_str()),
        ("GIT_COMMITTER_NAME", identity.name.as_str()),
        ("GIT_COMMITTER_EMAIL", identity.email.as_str()),
    ];
    let file = tempfile::NamedTempFile::new_in(mirror)
        .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()).map(|()| f))
        .map_err(|e| Error::other(format!("writing the note for {commit}: {e}")))?;
    let (commit, path) = (commit.to_string(), file.path().to_string_lossy().into_owned());
    let args = ["notes", "--ref", notes_ref, "add", "-f", "-F", path.as_str(), commit.as_str()];
    local(git, mirror, &args, &who)?;
    let id = local(git, mirror, &["rev-parse", "--verify", notes_ref], &[])?;
    ObjectId::from_hex(id.trim().as_bytes()).map_err(|e| Error::other(format!("reading {notes_ref}: {e}")))
}

/// Runs a local (no network) git command in the mirror; its stdout.
fn local(git: &GitCli, mirror: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut command = git.command(mirror);
    command.args(args).envs(env.iter().copied());
    let failed = |e: &dyn std::fmt::Display| Error::other(format!("git {}: {e}", args.join(" ")));
    let output = output_within(command, LOCAL_TIMEOUT)
        .map_err(|e| failed(&e))?
        .ok_or_else(|| failed(&format!("did not finish within {LOCAL_TIMEOUT:?}")))?;
    if !output.status.success() {
        return Err(failed(&String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// How long a local git command may run.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_job_in_flux_v1_words() {
        let message = "Release web:1.2\n\n - default:deployment/web (web): web:1.1 -> web:1.2\n\n\
                       Flux-Change: release\nFlux-Job: job-7\nFlux-User: jane \"j\"\n";
        assert_eq!(
            note_for(message),
            r#"{"jobID":"job-7","spec":{"type":"image","cause":{"user":"jane \"j\"","message":"Release web:1.2"}},"summary":"Release web:1.2\n\n - default:deployment/web (web): web:1.1 -> web:1.2"}"#
        );
        assert_eq!(full_ref("flux").unwrap(), "refs/notes/flux");
        assert_eq!(full_ref("refs/notes/x").unwrap(), "refs/notes/x");
        assert!(full_ref("bad..ref").is_err());
    }
}
