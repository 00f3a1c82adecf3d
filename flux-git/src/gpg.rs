//! Flux v1's `--git-gpg-key-import`: GPG keys from files or directories imported at start into
//! a GnuPG home of the process's own (a temporary directory, never the user's keyring), used to
//! sign commits and the sync tag ([`Signing::Gpg`](crate::Signing)) and to verify signatures
//! ([`TrustedKeys`](crate::TrustedKeys)).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flux_core::{Error, Result};

use crate::push::output_within;

/// How long one `gpg` run may take.
const GPG_TIMEOUT: Duration = Duration::from_secs(60);

/// A private GnuPG home holding imported keys; removed (and its `gpg-agent` stopped) on drop.
#[derive(Debug)]
pub struct GnupgHome {
    dir: tempfile::TempDir,
}

impl GnupgHome {
    /// A new, empty home (mode 0700, as gpg wants it).
    ///
    /// # Errors
    /// `Other` when the directory cannot be made.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flux-gnupg-")
            .tempdir()
            .map_err(|e| Error::other(format!("cannot create a GnuPG home: {e}")))?;
        Ok(GnupgHome { dir })
    }

    /// A new home with the keys at `paths` imported, as Flux v1 did: a path is a key file, or a
    /// directory whose regular files (not subdirectories) are key files. With `trust`, every
    /// imported key is given ultimate owner trust (Flux v1 did so when verifying signatures).
    /// Returns the home and the files imported.
    ///
    /// # Errors
    /// `NotFound` for a path that does not exist, `InvalidInput` naming each file gpg could not
    /// import, `Other` when gpg cannot be run.
    pub fn import(paths: &[PathBuf], trust: bool) -> Result<(Self, Vec<PathBuf>)> {
        let home = GnupgHome::new()?;
        let mut imported = Vec::new();
        let mut failed = Vec::new();
        for path in paths {
            for file in key_files(path)? {
                match home.gpg(&[std::ffi::OsStr::new("--import"), file.as_os_str()]) {
                    Ok(_) => imported.push(file),
                    Err(why) => failed.push(format!("{}: {why}", file.display())),
                }
            }
        }
        if !failed.is_empty() {
            return Err(Error::invalid(
                flux_core::Location::file("--git-gpg-key-import"),
                format!("cannot import GPG keys: {}", failed.join("; ")),
            ));
        }
        if trust {
            home.trust_all()?;
        }
        Ok((home, imported))
    }

    /// The directory, for `GNUPGHOME`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives every key in the home ultimate owner trust.
    fn trust_all(&self) -> Result<()> {
        let listing = self
            .gpg(&["--with-colons".as_ref(), "--fingerprint".as_ref(), "--list-keys".as_ref()])
            .map_err(|why| Error::other(format!("listing the imported GPG keys: {why}")))?;
        // The first `fpr` after each `pub` line is the primary key's fingerprint.
        let mut trust = String::new();
        let mut want = false;
        for line in listing.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.first() {
                Some(&"pub") => want = true,
                Some(&"fpr") if want => {
                    trust.push_str(&format!("{}:6:\n", fields.get(9).copied().unwrap_or_default()));
                    want = false;
                }
                _ => {}
            }
        }
        let file = self.path().join("ownertrust.txt");
        std::fs::write(&file, trust).map_err(|e| Error::other(format!("writing {}: {e}", file.display())))?;
        self.gpg(&["--import-ownertrust".as_ref(), file.as_os_str()])
            .map(|_| ())
            .map_err(|why| Error::other(format!("trusting the imported GPG keys: {why}")))
    }

    /// Runs `gpg --batch` in this home; its stdout, or what it said on failure.
    fn gpg(&self, args: &[&std::ffi::OsStr]) -> std::result::Result<String, String> {
        let mut command = Command::new("gpg");
        command.env("GNUPGHOME", self.path()).arg("--batch").args(args);
        match output_within(command, GPG_TIMEOUT) {
            Ok(Some(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Ok(Some(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Ok(None) => Err(format!("gpg did not finish within {GPG_TIMEOUT:?}")),
            Err(e) => Err(format!("cannot run gpg: {e}")),
        }
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        // The agent gpg started for this home would outlive it.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The key files `path` names: itself, or the regular files directly in it, sorted.
fn key_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::not_found(format!("GPG key path {} (--git-gpg-key-import): {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::other(format!("reading {}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    Ok(files)
}
