//! The local bare mirror of the remote branch and marker tag: where fetched objects land, reads
//! happen and new commits are built before they are pushed.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use flux_core::{Error, Result};
use gix::ObjectId;
use gix::refs::transaction::PreviousValue;

use crate::config::GitConfig;
use crate::errors::local_error;
use crate::remote::{Remote, ssh_command};

/// Each fetch adds a pack; past this many, they are repacked into one (as `git gc --auto` does
/// after a fetch), which also keeps gix's fixed number of index slots from running out.
const MAX_PACKS: usize = 16;

/// The mirror's directory (temporary or the configured one) and its repository.
pub(crate) struct Mirror {
    dir: PathBuf,
    options: gix::open::Options,
    /// Replaced after a repack, so new handles see the new pack set from a fresh store.
    repo: RwLock<gix::ThreadSafeRepository>,
    /// The `core.sshCommand` for ssh remotes, also given to the git CLI.
    pub(crate) ssh_command: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Mirror {
    /// Opens the mirror at `config.local_dir`, creating it (or a temporary one) when needed.
    pub(crate) fn open(config: &GitConfig, remote: &mut Remote) -> Result<Self> {
        let (dir, temp) = match &config.local_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("flux-git-")
                    .tempdir()
                    .map_err(|e| local_error("creating a directory for the local mirror", &e))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        if !dir.join("HEAD").is_file() {
            std::fs::create_dir_all(&dir).map_err(|e| local_error(&format!("creating {}", dir.display()), &e))?;
            gix::init_bare(&dir)
                .map_err(|e| local_error(&format!("creating a bare repository in {}", dir.display()), &e))?;
        }
        if remote.is_ssh() {
            remote.ssh_log = Some(dir.join("flux-ssh-stderr.log"));
        }
        let ssh_command = remote
            .ssh_log
            .as_ref()
            .map(|log| ssh_command(&config.host_key_check, &remote.credentials, log, config.timeout));
        let overrides: Vec<String> = ssh_command.iter().map(|cmd| format!("core.sshCommand={cmd}")).collect();
        // Room for the packs that pile up between two repacks.
        let slots = gix::odb::store::init::Slots::AsNeededByDiskState { multiplier: 2.0, minimum: 4 * MAX_PACKS };
        let options = gix::open::Options::default().config_overrides(overrides).object_store_slots(slots);
        let repo = open_repo(&dir, &options)?;
        Ok(Mirror { dir, options, repo: RwLock::new(repo), ssh_command, _temp: temp })
    }

    /// Repacks the mirror when fetches have left more than [`MAX_PACKS`] packs.
    pub(crate) fn compact_if_needed(&self, git: &Path) -> Result<()> {
        let packs = std::fs::read_dir(self.dir.join("objects").join("pack"))
            .map(|entries| {
                entries.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "pack")).count()
            })
            .unwrap_or(0);
        if packs <= MAX_PACKS {
            return Ok(());
        }
        let output = std::process::Command::new(git)
            .arg("--git-dir")
            .arg(&self.dir)
            .args(["repack", "-a", "-d", "-q"])
            .output()
            .map_err(|e| local_error("repacking the local mirror: cannot run git", &e))?;
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr);
            return Err(local_error("repacking the local mirror", &why.trim()));
        }
        let fresh = open_repo(&self.dir, &self.options)?;
        *self.repo.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        tracing::debug!(dir = %self.dir.display(), packs, "repacked the local mirror");
        Ok(())
    }

    /// The mirror's git directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A repository handle for the current thread.
    pub(crate) fn repo(&self) -> gix::Repository {
        self.repo.read().unwrap_or_else(|poisoned| poisoned.into_inner()).to_thread_local()
    }
}

fn open_repo(dir: &Path, options: &gix::open::Options) -> Result<gix::ThreadSafeRepository> {
    gix::open_opts(dir, options.clone())
        .map(gix::Repository::into_sync)
        .map_err(|e| local_error(&format!("opening the local mirror {}", dir.display()), &e))
}

/// The id `name` points to (peeled to a commit for annotated tags), if the ref exists.
pub(crate) fn read_ref(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>> {
    let Some(reference) = repo.try_find_reference(name).map_err(|e| local_error(&format!("reading {name}"), &e))?
    else {
        return Ok(None);
    };
    let id = reference.into_fully_peeled_id().map_err(|e| local_error(&format!("peeling {name}"), &e))?;
    Ok(Some(id.detach()))
}

/// Points `name` at `id`, whatever it pointed to before.
pub(crate) fn write_ref(repo: &gix::Repository, name: &str, id: ObjectId) -> Result<()> {
    repo.reference(name, id, PreviousValue::Any, "flux-git")
        .map(|_| ())
        .map_err(|e| local_error(&format!("updating {name}"), &e))
}

/// Removes `name` if it exists.
pub(crate) fn delete_ref(repo: &gix::Repository, name: &str) -> Result<()> {
    if let Some(reference) = repo.try_find_reference(name).map_err(|e| local_error(&format!("reading {name}"), &e))? {
        reference.delete().map_err(|e| local_error(&format!("deleting {name}"), &e))?;
    }
    Ok(())
}

/// Parses a revision given by a caller: a full hex object id.
pub(crate) fn parse_revision(revision: &flux_core::Revision) -> Result<ObjectId> {
    ObjectId::from_hex(revision.as_str().as_bytes())
        .map_err(|_| Error::not_found(format!("revision {revision} (not a full commit id)")))
}
