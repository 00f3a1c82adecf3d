//! Flux v1's deploy-key Secret (`--k8s-secret-name`, `--k8s-secret-volume-mount-path`,
//! `--k8s-secret-data-key`) and key generation (`--ssh-keygen-*`): a key ring whose private key
//! lives in `<keygen dir>/identity`, the file the unit's git source gives ssh.
//!
//! At start the key is the mounted `<mount>/<data key>`, else the Secret's data key read through
//! the API (a mount lags behind writes), else a new one made with `ssh-keygen` and written to the
//! Secret as `<data key>` and `<data key>.pub`. The public half is derived from the private key
//! (`ssh-keygen -y`), so a Secret holding only the private key is enough. The private key is
//! never logged, shown by `Debug` or put in an error.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use flux_core::{Error, Result};
use flux_daemon::DeployKey;
use flux_k8s::KubeSecret;

/// How long one `ssh-keygen` run may take (large RSA keys take seconds).
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a replica sharing the Secret with others reads it for a key another regenerated.
pub(crate) const FOLLOW_INTERVAL: Duration = Duration::from_secs(10);

/// Where a Pod's service account namespace is (Flux v1 read the Secret's namespace there).
pub(crate) const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How keys are found and made.
#[derive(Debug, Clone)]
pub(crate) struct KeyRingConfig {
    /// Where the Secret is mounted.
    pub mount: PathBuf,
    /// The data key of the private key.
    pub data_key: String,
    /// Where keys are generated and the key in use is kept.
    pub keygen_dir: PathBuf,
    /// `ssh-keygen -t` (default ed25519).
    pub key_type: Option<String>,
    /// `ssh-keygen -b`.
    pub bits: Option<u32>,
    /// `ssh-keygen -m`.
    pub format: Option<String>,
    /// Whether a key may be generated and written to the Secret (not in a dry run).
    pub generate: bool,
}

/// The deploy key of a unit, kept in a Kubernetes Secret.
pub(crate) struct SecretKeyRing {
    config: KeyRingConfig,
    secret: KubeSecret,
    public: RwLock<String>,
    /// One regeneration at a time.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SecretKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeyRing")
            .field("secret", &self.secret)
            .field("key_path", &self.key_path())
            .finish_non_exhaustive()
    }
}

impl SecretKeyRing {
    /// The key ring of `secret`: the mounted key, else the Secret's, else a new one written to
    /// the Secret (when `config.generate`), installed in `<keygen dir>/identity`.
    pub(crate) async fn open(config: KeyRingConfig, secret: KubeSecret) -> Result<Self> {
        std::fs::create_dir_all(&config.keygen_dir).map_err(|e| {
            Error::other(format!("cannot create --ssh-keygen-dir {}: {e}", config.keygen_dir.display()))
        })?;
        let ring = SecretKeyRing { config, secret, public: RwLock::new(String::new()), writing: Default::default() };
        let mounted = ring.config.mount.join(&ring.config.data_key);
        let private = match std::fs::read(&mounted) {
            Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => Some(bytes),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::other(format!("cannot read the mounted deploy key {}: {e}", mounted.display())));
            }
        };
        let from = if private.is_some() { "mounted Secret" } else { "Secret" };
        // The Secret's version as read: a key generated is written only if it is still so.
        let mut read_at = None;
        let private = match private {
            Some(bytes) => Some(bytes),
            None => {
                let (value, version) =
                    ring.secret.data_at(&ring.config.data_key).await.map_err(|e| ring.secret_error(e))?;
                read_at = Some(version);
                value.map(|v| v.expose().to_vec())
            }
        };
        match private {
            Some(bytes) => {
                let public = ring.use_key(bytes).await?;
                tracing::info!(secret = %ring.secret_name(), from, identity = %ring.key_path().display(), identity_pub = %public, "deploy key");
            }
            None if ring.config.generate => match ring.generate(read_at.as_deref()).await {
                Ok(public) => {
                    tracing::info!(secret = %ring.secret_name(), identity = %ring.key_path().display(), identity_pub = %public, "deploy key generated and written to the Secret");
                }
                // Another replica (sharing the Secret) wrote its key first: that one is used.
                Err(Error::Conflict { .. }) => {
                    let value = ring.secret.data(&ring.config.data_key).await.map_err(|e| ring.secret_error(e))?;
                    let bytes = value.map(|v| v.expose().to_vec()).ok_or_else(|| {
                        Error::conflict(format!(
                            "the deploy-key Secret {} changed while a key was generated, and holds no key",
                            ring.secret_name()
                        ))
                    })?;
                    let public = ring.use_key(bytes).await?;
                    tracing::info!(secret = %ring.secret_name(), identity = %ring.key_path().display(), identity_pub = %public, "deploy key: another replica wrote one to the Secret first; using it");
                }
                Err(e) => return Err(e),
            },
            None => {
                return Err(Error::other(format!(
                    "no deploy key in Secret {} (data key {:?}) and none may be generated in a dry run",
                    ring.secret_name(),
                    ring.config.data_key
                )));
            }
        }
        Ok(ring)
    }

    /// Puts the Secret's key in use when it is not the one in use (another replica sharing the
    /// Secret regenerated it); whether it changed. A Secret without a key changes nothing.
    ///
    /// # Errors
    /// When the Secret cannot be read or the key cannot be put in use (the old one stays).
    pub(crate) async fn follow(&self) -> Result<bool> {
        let _one = self.writing.lock().await;
        let value = self.secret.data(&self.config.data_key).await.map_err(|e| self.secret_error(e))?;
        let Some(value) = value else { return Ok(false) };
        let bytes = with_final_newline(value.expose().to_vec());
        if std::fs::read(self.key_path()).is_ok_and(|in_use| in_use == bytes) {
            return Ok(false);
        }
        let public = self.use_key(bytes).await?;
        tracing::info!(secret = %self.secret_name(), identity_pub = %public, "deploy key changed in the Secret (regenerated by another replica): in use from the next fetch");
        Ok(true)
    }

    /// Follows the Secret every [`FOLLOW_INTERVAL`] for as long as the ring lives (with high
    /// availability: a key regenerated through one replica is used by all).
    pub(crate) fn follow_in_background(ring: &std::sync::Arc<Self>) {
        let ring = std::sync::Arc::downgrade(ring);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                let Some(ring) = ring.upgrade() else { return };
                if let Err(e) = ring.follow().await {
                    tracing::warn!(secret = %ring.secret_name(), error = %e, "cannot read the deploy-key Secret for a new key");
                }
            }
        });
    }

    /// The private key file the source gives ssh.
    pub(crate) fn key_path(&self) -> PathBuf {
        self.config.keygen_dir.join("identity")
    }

    fn secret_name(&self) -> String {
        format!("{}/{}", self.secret.namespace(), self.secret.name())
    }

    fn secret_error(&self, e: Error) -> Error {
        match e {
            Error::NotFound { .. } => Error::not_found(format!(
                "the deploy-key Secret {} (--k8s-secret-name; create it, empty, for fluxd to fill)",
                self.secret_name()
            )),
            e => e,
        }
    }

    /// Puts `private` in use (atomically, mode 0600); its public half.
    /// Installs the private key `private` (ssh wants its final newline) and makes its public
    /// half the one shown; the public half.
    async fn use_key(&self, private: Vec<u8>) -> Result<String> {
        let public = self.install(&with_final_newline(private)).await?;
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = public.clone();
        Ok(public)
    }

    async fn install(&self, private: &[u8]) -> Result<String> {
        let dir = self.new_key_dir()?;
        let staged = dir.path().join("identity");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .and_then(|mut f| f.write_all(private).map(|()| f));
        let file = file
            .as_mut()
            .map_err(|e| Error::other(format!("cannot write the deploy key in {}: {e}", dir.path().display())))?;
        file.sync_all().map_err(|e| Error::other(format!("cannot write the deploy key: {e}")))?;
        let public = public_key_of(&staged).await?;
        self.put_in_use(&staged)?;
        Ok(public)
    }

    /// A new private directory in the keygen dir (removed when dropped).
    fn new_key_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new().prefix("..keygen-").tempdir_in(&self.config.keygen_dir).map_err(|e| {
            Error::other(format!("cannot create a directory in {}: {e}", self.config.keygen_dir.display()))
        })
    }

    fn put_in_use(&self, staged: &Path) -> Result<()> {
        std::fs::rename(staged, self.key_path())
            .map_err(|e| Error::other(format!("cannot put the deploy key in {}: {e}", self.key_path().display())))
    }
}

#[async_trait]
impl DeployKey for SecretKeyRing {
    fn public_key(&self) -> Option<String> {
        let public = self.public.read().unwrap_or_else(|p| p.into_inner());
        (!public.is_empty()).then(|| public.clone())
    }

    /// A new key from `ssh-keygen`, written to the Secret, then put in use (Flux v1's order: on
    /// any failure the key in use and in the Secret stays).
    async fn regenerate(&self) -> Result<String> {
        self.generate(None).await
    }
}

impl SecretKeyRing {
    /// A new key from `ssh-keygen`, written to the Secret (only if it is still at `version`,
    /// when given: [`Error::Conflict`] otherwise, nothing written), then put in use.
    async fn generate(&self, version: Option<&str>) -> Result<String> {
        let _one = self.writing.lock().await;
        let dir = self.new_key_dir()?;
        let staged = dir.path().join("identity");
        let mut args: Vec<String> = vec!["-q".into(), "-N".into(), String::new()];
        args.extend(["-t".into(), self.config.key_type.clone().unwrap_or_else(|| "ed25519".into())]);
        if let Some(bits) = self.config.bits {
            args.extend(["-b".into(), bits.to_string()]);
        }
        if let Some(format) = &self.config.format {
            args.extend(["-m".into(), format.clone()]);
        }
        args.extend(["-f".into(), staged.display().to_string()]);
        ssh_keygen(&args).await?;
        let private =
            std::fs::read(&staged).map_err(|e| Error::other(format!("cannot read the generated key: {e}")))?;
        let public = public_key_of(&staged).await?;
        let public_name = format!("{}.pub", self.config.data_key);
        let public_line = format!("{public}\n");
        let entries: [(&str, &[u8]); 2] = [(&self.config.data_key, &private), (&public_name, public_line.as_bytes())];
        let written = match version {
            Some(version) => self.secret.set_data_at(&entries, version).await,
            None => self.secret.set_data(&entries).await,
        };
        written.map_err(|e| self.secret_error(e))?;
        self.put_in_use(&staged)?;
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = public.clone();
        Ok(public)
    }
}

/// The public half of the private key at `path` (`ssh-keygen -y`), on one line.
pub(crate) async fn public_key_of(path: &Path) -> Result<String> {
    let out = ssh_keygen(&["-y".into(), "-f".into(), path.display().to_string()]).await?;
    let public = String::from_utf8_lossy(&out).trim().to_owned();
    if public.is_empty() {
        return Err(Error::other("ssh-keygen -y gave no public key"));
    }
    Ok(public)
}

/// Runs `ssh-keygen args`, bounded by [`KEYGEN_TIMEOUT`]; its standard output.
async fn ssh_keygen(args: &[String]) -> Result<Vec<u8>> {
    let mut command = tokio::process::Command::new("ssh-keygen");
    command.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let what = if args.iter().any(|a| a == "-y") { "ssh-keygen -y (deriving the public key)" } else { "ssh-keygen" };
    let out = match tokio::time::timeout(KEYGEN_TIMEOUT, command.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(Error::other(format!("cannot run {what}: {e}"))),
        Err(_) => return Err(Error::transient(format!("{what} did not finish within {KEYGEN_TIMEOUT:?}"))),
    };
    if !out.status.success() {
        // ssh-keygen's complaints name files and formats, never key material.
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Error::other(format!("{what} failed ({}): {said}", out.status)));
    }
    Ok(out.stdout)
}

/// Whether `url` is reached over ssh (`ssh://`, `git+ssh://` or scp-like `user@host:path`):
/// only then is a deploy key of use (Flux v1 skipped the key ring for HTTP URLs).
pub(crate) fn is_ssh_url(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return matches!(scheme, "ssh" | "git+ssh" | "ssh+git");
    }
    // scp-like: a ':' before any '/', and not a local path.
    match url.find(':') {
        Some(colon) => !url[..colon].contains('/') && colon > 0,
        None => false,
    }
}

/// `key` ending with a newline (a Secret's value may lack it; ssh refuses such a key).
fn with_final_newline(mut key: Vec<u8>) -> Vec<u8> {
    if !key.ends_with(b"\n") {
        key.push(b'\n');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls() {
        for url in ["git@github.com:org/fleet", "ssh://git@host/r", "git+ssh://h/r", "host:repo"] {
            assert!(is_ssh_url(url), "{url}");
        }
        for url in ["https://github.com/org/fleet", "git://h/r", "file:///r", "/srv/r", "./r:x", ""] {
            assert!(!is_ssh_url(url), "{url}");
        }
    }
}
