//! The remote: its URL with any password moved out into credentials, the ssh command that
//! carries the deploy key and host-key policy, and redaction of every secret from messages.

use std::path::{Path, PathBuf};

use flux_core::{Error, Location};
use gix::url::Scheme;

use crate::config::{Credentials, GitConfig, HostKeyCheck, Secret};
use crate::errors::remote_error;

/// A parsed remote. Its `url` never holds a password.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// The URL as given, minus any password.
    pub(crate) url: String,
    pub(crate) scheme: Scheme,
    pub(crate) credentials: Credentials,
    pub(crate) redactor: Redactor,
    /// Where ssh writes its complaints (host key, authentication), to be quoted in errors:
    /// gix only reports "handshake failed" for most of them.
    pub(crate) ssh_log: Option<PathBuf>,
}

/// `url` with any password replaced by `***`, for display; unparsable URLs are hidden whole.
pub(crate) fn url_without_password(url: &str) -> String {
    match gix::url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            parsed.set_password(Some("***".to_owned()));
            parsed.to_bstring().to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

impl Remote {
    /// Parses `config.url`; a password in it becomes [`Credentials::Basic`] (or replaces the
    /// password of configured basic credentials).
    pub(crate) fn parse(config: &GitConfig) -> flux_core::Result<Self> {
        let mut url = gix::url::parse(config.url.as_str()).map_err(|_| {
            Error::invalid(Location::file("git url"), "not a git URL (the URL is not shown: it may hold a secret)")
        })?;
        let mut credentials = config.credentials.clone();
        let shown = match url.set_password(None) {
            Some(password) => {
                let username = url.user().unwrap_or("x-access-token").to_owned();
                url.set_user(None);
                credentials = Credentials::Basic { username, password: Secret::new(password) };
                url.to_bstring().to_string()
            }
            None => config.url.clone(),
        };
        let redactor = Redactor::new(credentials.secrets());
        Ok(Remote { url: shown, scheme: url.scheme.clone(), credentials, redactor, ssh_log: None })
    }

    /// Starts a network operation: forgets what ssh said during the previous one.
    pub(crate) fn begin(&self) {
        if let Some(log) = &self.ssh_log {
            let _ = std::fs::write(log, b"");
        }
    }

    /// The error for a failed network operation `what`, with ssh's own words when it said any;
    /// secrets redacted (see [`remote_error`]).
    pub(crate) fn fail(&self, what: &str, cause: &dyn std::fmt::Display) -> Error {
        let said = self.ssh_log.as_ref().and_then(|log| std::fs::read_to_string(log).ok()).unwrap_or_default();
        let said = said.trim();
        if said.is_empty() {
            remote_error(&self.redactor, &self.url, what, cause)
        } else {
            remote_error(&self.redactor, &self.url, what, &format!("{cause:#} (ssh: {said})"))
        }
    }

    /// Whether the remote is reached over ssh (`ssh://` or scp-like).
    pub(crate) fn is_ssh(&self) -> bool {
        self.scheme == Scheme::Ssh
    }
}

/// The `core.sshCommand` for `check` and `credentials`: batch mode (never prompt), strict host
/// keys unless explicitly disabled, only the deploy key when one is given, and `timeout` for the
/// connection and banner exchange and between keep-alives (a silent server is dropped).
pub(crate) fn ssh_command(
    check: &HostKeyCheck,
    credentials: &Credentials,
    stderr_log: &Path,
    timeout: std::time::Duration,
) -> String {
    let seconds = timeout.as_secs().max(1);
    let mut cmd = format!(
        "ssh -o BatchMode=yes -o ConnectTimeout={seconds} -o ServerAliveInterval={seconds} -o ServerAliveCountMax=1"
    );
    match check {
        HostKeyCheck::UserKnownHosts => cmd.push_str(" -o StrictHostKeyChecking=yes"),
        HostKeyCheck::KnownHostsFile(file) => {
            cmd.push_str(" -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=");
            cmd.push_str(&shell_quote(file));
        }
        HostKeyCheck::InsecureAcceptAny => {
            cmd.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        }
    }
    if let Credentials::SshKey { private_key } = credentials {
        cmd.push_str(" -o IdentitiesOnly=yes -o IdentityAgent=none -i ");
        cmd.push_str(&shell_quote(private_key));
    }
    // gix and git run the command through `sh`, which applies the redirection.
    cmd.push_str(" 2>>");
    cmd.push_str(&shell_quote(stderr_log));
    cmd
}

/// `path` quoted for `sh`.
pub(crate) fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// Replaces every known secret in a message by `***`.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    fn new(secrets: Vec<String>) -> Self {
        Redactor { secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect() }
    }

    /// `message` with every secret (as given, or percent-encoded as in a URL) replaced.
    pub(crate) fn redact(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
            let encoded = percent_encode(secret);
            if encoded != *secret {
                out = out.replace(encoded.as_str(), "***");
            }
        }
        out
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_in_url_moves_to_credentials() {
        let config = GitConfig::new("https://bot:s3cr%2Ft@git.example.com/org/repo.git", "main");
        let remote = Remote::parse(&config).unwrap();
        assert!(!remote.url.contains("s3cr"), "{}", remote.url);
        assert_eq!(remote.scheme, Scheme::Https);
        let shown = format!("{remote:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert_eq!(remote.credentials.http_account().unwrap().0, "bot");
        assert_eq!(remote.redactor.redact("failed: s3cr/t and s3cr%2Ft"), "failed: *** and ***");
    }

    #[test]
    fn url_forms() {
        for (url, ssh) in [
            ("git@github.com:org/repo.git", true),
            ("ssh://git@127.0.0.1:2222/srv/repo.git", true),
            ("git://127.0.0.1:9418/repo.git", false),
            ("file:///srv/repo.git", false),
            ("/srv/repo.git", false),
        ] {
            let remote = Remote::parse(&GitConfig::new(url, "main")).unwrap();
            assert_eq!(remote.is_ssh(), ssh, "{url}");
            assert_eq!(remote.url, url);
        }
    }

    #[test]
    fn ssh_command_checks_host_keys_by_default() {
        let key = Credentials::SshKey { private_key: "/k/id it's".into() };
        let log = Path::new("/m/ssh.log");
        let timeout = std::time::Duration::from_secs(7);
        let cmd = ssh_command(&HostKeyCheck::default(), &key, log, timeout);
        assert!(cmd.contains("StrictHostKeyChecking=yes") && cmd.contains(r"-i '/k/id it'\''s'"), "{cmd}");
        assert!(cmd.contains("ConnectTimeout=7") && cmd.contains("ServerAliveInterval=7"), "{cmd}");
        let file = ssh_command(&HostKeyCheck::KnownHostsFile("/k/known".into()), &Credentials::None, log, timeout);
        assert!(file.contains("UserKnownHostsFile='/k/known'"), "{file}");
    }
}
