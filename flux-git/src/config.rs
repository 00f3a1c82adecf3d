//! What a [`GitSource`](crate::GitSource) connects to and how: URL, branch, credentials, host-key
//! policy, marker tag, signing and verification. Secrets are held in [`Secret`], whose `Debug`
//! never shows them.

use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// How long one network operation (fetch, push, listing the remote's refs) may take by
/// default: Flux v1's `--git-timeout` default.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A password or token: `Debug` prints `***`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that hands it to the transport.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate to the remote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// None (a public or local repository, or ssh with the user's own agent and keys).
    #[default]
    None,
    /// An ssh deploy key: the private key file, used alone (`IdentitiesOnly`).
    SshKey {
        /// The private key file.
        private_key: PathBuf,
    },
    /// HTTPS basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An HTTPS token (GitHub, GitLab, Gitea), sent as the password of user `x-access-token`.
    Token(Secret),
}

impl Credentials {
    /// The secrets to keep out of logs and errors.
    pub(crate) fn secrets(&self) -> Vec<String> {
        match self {
            Credentials::Basic { password, .. } => vec![password.expose().to_owned()],
            Credentials::Token(token) => vec![token.expose().to_owned()],
            Credentials::None | Credentials::SshKey { .. } => Vec::new(),
        }
    }

    /// User name and password for HTTPS, if any.
    pub(crate) fn http_account(&self) -> Option<(String, String)> {
        match self {
            Credentials::Basic { username, password } => Some((username.clone(), password.expose().to_owned())),
            Credentials::Token(token) => Some(("x-access-token".to_owned(), token.expose().to_owned())),
            Credentials::None | Credentials::SshKey { .. } => None,
        }
    }
}

/// How ssh checks the server's host key. Checking is on unless explicitly turned off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Strict checking against the user's own known_hosts files (`~/.ssh/known_hosts`, …).
    #[default]
    UserKnownHosts,
    /// Strict checking against this known_hosts file only.
    KnownHostsFile(PathBuf),
    /// No checking at all: any server may pretend to be the remote. Only for throwaway setups.
    InsecureAcceptAny,
}

/// Signing of the commits this source makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// OpenPGP signing with `gpg`: the key id (or fingerprint, or user id) to sign with.
    Gpg {
        /// Passed to `gpg --local-user`.
        key_id: String,
        /// The GnuPG home holding the secret key; `None` for gpg's default.
        gnupg_home: Option<PathBuf>,
    },
    /// SSH signing with `ssh-keygen -Y sign` and this private key file.
    Ssh {
        /// The private key file (unencrypted, or served by an ssh agent).
        private_key: PathBuf,
    },
}

/// Which commits must carry a valid signature by a trusted key before a revision is synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// No verification.
    #[default]
    None,
    /// The head commit only.
    Head,
    /// Every commit on the first-parent chain from the head back to the sync marker (exclusive),
    /// or back to the root (or the shallow boundary) when there is no marker on that chain
    /// (Flux v1's `first-parent`).
    AllFirstParent,
    /// Every commit reachable from the head and not from the sync marker, on every parent
    /// (`git rev-list <marker>..<head>`, Flux v1's `all`); back to the root (or the shallow
    /// boundary) when there is no marker.
    All,
}

/// The keys trusted when verifying signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    /// A GnuPG home whose public keyring holds the trusted OpenPGP keys; `None` for gpg's default.
    pub gnupg_home: Option<PathBuf>,
    /// An ssh "allowed signers" file (see `ssh-keygen(1)`) listing the trusted ssh keys.
    pub ssh_allowed_signers: Option<PathBuf>,
}

/// Everything [`GitSource::open`](crate::GitSource::open) needs. Build it with [`GitConfig::new`]
/// and the `with_*` methods. Its `Debug` hides passwords, also one written into the URL.
#[derive(Clone)]
pub struct GitConfig {
    /// The remote: a local path, `file://`, `git://`, `ssh://`, scp-like `git@host:org/repo.git`,
    /// or `https://`. A password in the URL is moved into [`GitConfig::credentials`].
    pub url: String,
    /// The branch to follow and commit to.
    pub branch: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// How ssh checks host keys.
    pub host_key_check: HostKeyCheck,
    /// Fetch only this many commits of history (`git clone --depth`); `None` for all of it.
    pub depth: Option<NonZeroU32>,
    /// The tag that marks the last synced revision.
    pub sync_tag: String,
    /// Never push anything: commits and marker moves are refused with `Unauthorized`.
    pub read_only: bool,
    /// Sign the commits made.
    pub signing: Option<Signing>,
    /// Text added to the message of every commit made (Flux v1's `--git-ci-skip-message`;
    /// `[ci skip]` with [`GitConfig::with_skip_ci`]): its own paragraph before the `Flux-*`
    /// trailers, so trailers stay last. Not added twice when the message already holds it.
    pub ci_skip_message: Option<String>,
    /// Who tags the sync marker and writes notes (the committer of flux-rs's own git objects).
    /// Default `Weave Flux <support@weave.works>`, Flux v1's `--git-user`/`--git-email`.
    pub identity: flux_core::Author,
    /// The notes ref (`refs/notes/<name>`, Flux v1's `--git-notes-ref`) where every commit made
    /// gets a note with its job (JSON); `None` writes no notes.
    pub notes_ref: Option<String>,
    /// Which commits must be signed by a trusted key.
    pub verify: VerifyMode,
    /// The keys trusted by [`GitConfig::verify`].
    pub trusted_keys: TrustedKeys,
    /// Where the local bare mirror lives (kept across restarts to make the first fetch cheap);
    /// `None` for a temporary directory removed with the source.
    pub local_dir: Option<PathBuf>,
    /// The `git` program used to push and to verify signatures.
    pub git_program: PathBuf,
    /// How long one network operation with the remote may take (a refresh — listing refs and
    /// fetching —, or a push, including ssh's connection): after it, the operation fails with a
    /// `Transient` error naming the remote and the timeout, and its connection or `git` process
    /// is ended. Default [`DEFAULT_GIT_TIMEOUT`].
    pub timeout: Duration,
}

impl fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitConfig")
            .field("url", &crate::remote::url_without_password(&self.url))
            .field("branch", &self.branch)
            .field("credentials", &self.credentials)
            .field("host_key_check", &self.host_key_check)
            .field("depth", &self.depth)
            .field("sync_tag", &self.sync_tag)
            .field("read_only", &self.read_only)
            .field("signing", &self.signing)
            .field("ci_skip_message", &self.ci_skip_message)
            .field("identity", &self.identity)
            .field("notes_ref", &self.notes_ref)
            .field("verify", &self.verify)
            .field("trusted_keys", &self.trusted_keys)
            .field("local_dir", &self.local_dir)
            .field("git_program", &self.git_program)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl GitConfig {
    /// A read-write source following `branch` of `url`, with no credentials, host keys checked
    /// against the user's known_hosts, full history, marker tag `flux-sync`, nothing signed or
    /// verified, no notes.
    pub fn new(url: impl Into<String>, branch: impl Into<String>) -> Self {
        GitConfig {
            url: url.into(),
            branch: branch.into(),
            credentials: Credentials::None,
            host_key_check: HostKeyCheck::default(),
            depth: None,
            sync_tag: "flux-sync".to_owned(),
            read_only: false,
            signing: None,
            ci_skip_message: None,
            identity: flux_core::Author::default(),
            notes_ref: None,
            verify: VerifyMode::None,
            trusted_keys: TrustedKeys::default(),
            local_dir: None,
            git_program: PathBuf::from("git"),
            timeout: DEFAULT_GIT_TIMEOUT,
        }
    }

    /// Sets how long one network operation may take (see [`GitConfig::timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the host-key policy.
    pub fn with_host_key_check(mut self, check: HostKeyCheck) -> Self {
        self.host_key_check = check;
        self
    }

    /// Fetches only `depth` commits of history.
    pub fn with_depth(mut self, depth: NonZeroU32) -> Self {
        self.depth = Some(depth);
        self
    }

    /// Names the sync marker tag.
    pub fn with_sync_tag(mut self, tag: impl Into<String>) -> Self {
        self.sync_tag = tag.into();
        self
    }

    /// Makes the source read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Signs commits.
    pub fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = Some(signing);
        self
    }

    /// Adds `[ci skip]` to commit messages (Flux v1's `--git-ci-skip`).
    pub fn with_skip_ci(self) -> Self {
        self.with_ci_skip_message("[ci skip]")
    }

    /// Adds `message` to commit messages (Flux v1's `--git-ci-skip-message`); an empty one
    /// adds nothing.
    pub fn with_ci_skip_message(mut self, message: impl Into<String>) -> Self {
        let message = message.into();
        self.ci_skip_message = (!message.trim().is_empty()).then(|| message.trim().to_owned());
        self
    }

    /// Sets who tags the sync marker and writes notes.
    pub fn with_identity(mut self, identity: flux_core::Author) -> Self {
        self.identity = identity;
        self
    }

    /// Writes a note with the job on every commit made, under `refs/notes/<name>` (a full
    /// `refs/notes/...` name is taken as it is).
    pub fn with_notes_ref(mut self, name: impl Into<String>) -> Self {
        self.notes_ref = Some(name.into());
        self
    }

    /// Requires signatures by `trusted` keys, as `mode` says.
    pub fn with_verification(mut self, mode: VerifyMode, trusted: TrustedKeys) -> Self {
        self.verify = mode;
        self.trusted_keys = trusted;
        self
    }

    /// Keeps the local mirror in `dir`.
    pub fn with_local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let config = GitConfig::new("https://example.com/r.git", "main")
            .with_credentials(Credentials::Basic { username: "bot".into(), password: Secret::new("hunter2") });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bot") && shown.contains("***"), "{shown}");
        let in_url = format!("{:?}", GitConfig::new("https://bot:hunter2@example.com/r.git", "main"));
        assert!(!in_url.contains("hunter2") && in_url.contains("example.com"), "{in_url}");
        let token = format!("{:?}", Credentials::Token(Secret::new("ghp_abcdef")));
        assert!(!token.contains("ghp_abcdef"), "{token}");
    }
}
