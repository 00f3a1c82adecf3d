//! SOPS-encrypted manifests (Flux v1's `--sops`): a YAML or JSON file whose first document has
//! a top-level `sops:` block is decrypted before it is read as manifests.
//!
//! Files whose data key is wrapped with age are decrypted natively, with the identities sops
//! itself would use (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `~/.config/sops/age/keys.txt`); the
//! MAC is verified. Files the native path cannot open (PGP, KMS, Vault, Shamir key groups, age
//! plugins, comment rules, or no age identity that fits) go to the `sops` program when it is
//! installed: `sops --decrypt`, bounded by the generator's timeout. Either way a file decrypts
//! completely or is an error naming it and what failed; no error, log line or `Debug` output
//! holds a decrypted value. Comments are dropped (sops encrypts them too; manifests do not
//! need them).

mod keys;
mod native;
mod program;
mod tree;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use flux_core::manifest::ManifestOptions;
use flux_core::{Error, Location, Result};

use keys::Identities;
use native::Failure;
use tree::{Format, Node};

/// The metadata key of a SOPS file.
const SOPS_KEY: &str = "sops";

/// How SOPS files are decrypted: where age identities are looked up, and which `sops`
/// program handles the other key kinds.
///
/// `Debug` shows variable names, never their values.
#[derive(Clone)]
pub struct Sops {
    /// `None`: this process's environment; `Some`: exactly these variables.
    env: Option<Vec<(String, String)>>,
    /// The `sops` program; `None`: none is used.
    program: Option<PathBuf>,
    limits: ManifestOptions,
}

impl fmt::Debug for Sops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env = self.env.as_ref().map(|vars| vars.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
        f.debug_struct("Sops").field("env", &env).field("program", &self.program).finish_non_exhaustive()
    }
}

impl Default for Sops {
    fn default() -> Self {
        Sops::from_env()
    }
}

impl Sops {
    /// Keys as sops reads them from this process's environment, at every decryption (a mounted
    /// key file may change); the `sops` program from the `PATH`, if there is one.
    pub fn from_env() -> Self {
        Sops { env: None, program: find_on_path("sops"), limits: ManifestOptions::default() }
    }

    /// Keys from exactly these variables (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `HOME`,
    /// `XDG_CONFIG_HOME`, and whatever the `sops` program needs for other key kinds), not from
    /// this process's environment; the program runs with them and `PATH` only.
    pub fn with_env<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        let vars = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Sops { env: Some(vars), ..Sops::from_env() }
    }

    /// Uses this `sops` program (`None`: none, only native age decryption).
    pub fn with_program(mut self, program: Option<PathBuf>) -> Self {
        self.program = program;
        self
    }

    /// The limits the encrypted file is parsed under (size, documents, depth, aliases).
    pub fn with_limits(mut self, limits: ManifestOptions) -> Self {
        self.limits = limits;
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None => std::env::var(name).ok(),
        }
    }

    /// The plaintext of `content` (the file `path`) when it is a SOPS file, `None` when it is
    /// not; the `sops` program, if used, may run for `timeout`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] at `path` when it is a SOPS file that cannot be decrypted: no
    /// key fits, a value or the MAC fails authentication, the metadata is broken, or the
    /// program fails or runs past `timeout`. The message says what failed, never a value.
    pub async fn decrypt(&self, path: &str, content: &[u8], timeout: Duration) -> Result<Option<String>> {
        let Some((mut documents, meta)) = self.encrypted(path, content)? else { return Ok(None) };
        let fail = |why: String| Error::invalid(Location::file(path), format!("cannot decrypt this SOPS file: {why}"));
        let identities = Identities::load(|name| self.var(name)).map_err(fail)?;
        let unsupported = match native::decrypt(&mut documents, &meta, &identities) {
            Ok(()) => return tree::emit(&documents).map(Some).map_err(fail),
            Err(Failure::Invalid(why)) => return Err(fail(why)),
            Err(Failure::Unsupported(why)) => why,
        };
        let Some(program) = &self.program else {
            return Err(fail(format!("{unsupported}; the sops program is not installed")));
        };
        tracing::debug!(file = path, reason = %unsupported, "decrypting with the sops program");
        let format = Format::of(path);
        program::decrypt(program, content, format, self.env.as_deref(), timeout)
            .await
            .map(Some)
            .map_err(|e| fail(format!("{unsupported}; {e}")))
    }

    /// The documents and metadata of a SOPS file, `None` for any other file.
    fn encrypted(&self, path: &str, content: &[u8]) -> Result<Option<(Vec<Node>, Node)>> {
        if !might_be_sops(content) {
            return Ok(None);
        }
        let at = || Location::file(path);
        if content.len() > self.limits.max_file_bytes {
            return Err(Error::invalid(
                at(),
                format!("file is over the limit of {} bytes", self.limits.max_file_bytes),
            ));
        }
        let text = std::str::from_utf8(content).map_err(|_| Error::invalid(at(), "file is not valid UTF-8"))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut documents = tree::parse(text, Format::of(path), &self.limits).map_err(|e| Error::invalid(at(), e))?;
        // sops takes the metadata from the first document and drops the key from every one.
        let Some(meta) = documents.first().and_then(|d| d.get(SOPS_KEY)).cloned() else { return Ok(None) };
        for document in &mut documents {
            if let Node::Map(items) = document {
                items.retain(|(k, _)| k != SOPS_KEY);
            }
        }
        Ok(Some((documents, meta)))
    }
}

/// Whether `content` is a SOPS file (its first document has a top-level `sops:` entry), for
/// the refusal of encrypted files when decryption is off. Unparsable files are not.
pub fn is_sops_file(path: &str, content: &[u8]) -> bool {
    let sops = Sops { env: Some(Vec::new()), program: None, limits: ManifestOptions::default() };
    matches!(sops.encrypted(path, content), Ok(Some(_)))
}

/// A cheap first look: a SOPS file names its `sops` block.
fn might_be_sops(content: &[u8]) -> bool {
    let has = |needle: &[u8]| content.windows(needle.len()).any(|w| w == needle);
    has(b"sops")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}
