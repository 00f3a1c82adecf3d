//! Who we are to each registry host: static credentials, pull secrets supplied at run time, and
//! Docker's `config.json` (with its credential helpers). Secrets never reach `Debug` or errors.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;

use docker_credential::{CredentialRetrievalError, DockerCredential};
use flux_core::{Error, Location};
use oci_client::secrets::RegistryAuth;

/// A credential for one registry host.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// No credential: anonymous access (a bearer challenge still gets an anonymous token).
    #[default]
    Anonymous,
    /// A user name and password (or access token used as password).
    Basic {
        /// The user name; not secret, shown in `Debug`.
        username: String,
        /// The password; never shown.
        password: String,
    },
    /// A bearer token (an identity token from `docker login`); never shown.
    Token(String),
}

impl Credential {
    /// A basic credential.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credential::Basic { username: username.into(), password: password.into() }
    }

    pub(crate) fn to_oci(&self) -> RegistryAuth {
        match self {
            Credential::Anonymous => RegistryAuth::Anonymous,
            Credential::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
            Credential::Token(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Credentials by registry host, from one workload's image pull secrets (its own, then its
/// service account's). An [`OciRegistry::with_pull_credentials`](crate::OciRegistry::with_pull_credentials)
/// view uses them instead of the handle's own credentials for those hosts, and the handle's
/// (configured credentials, then Docker's `config.json`) for every other host, as Flux v1 merged
/// `--docker-config` under the pull secrets. `Debug` shows the hosts only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PullCredentials {
    by_host: BTreeMap<String, Credential>,
}

impl fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullCredentials").field("hosts", &self.by_host.keys().collect::<Vec<_>>()).finish()
    }
}

impl PullCredentials {
    /// No credentials: a view with them answers as the handle itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the credential for `host` (a secret's `auths` key such as `https://index.docker.io/v1/`,
    /// `ghcr.io` or `127.0.0.1:5000`; normalised to the host). The first one set for a host is
    /// kept, as the kubelet tries a workload's own secrets before its service account's.
    pub fn insert(&mut self, host: &str, credential: Credential) {
        self.by_host.entry(normalise_host(host)).or_insert(credential);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// The hosts they are for.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Credential)> {
        self.by_host.iter().map(|(h, c)| (h.as_str(), c))
    }
}

/// A fingerprint of `credential` for `host`, salted: equal for equal credentials, so views with
/// the same credentials share cached answers, and useless for guessing the password from.
pub(crate) fn identity(salt: &str, host: &str, credential: &Credential) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [salt, host] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    match credential {
        Credential::Anonymous => hash.update(b"anonymous"),
        Credential::Basic { username, password } => {
            hash.update(b"basic\0");
            hash.update(username.as_bytes());
            hash.update([0]);
            hash.update(password.as_bytes());
        }
        Credential::Token(token) => {
            hash.update(b"token\0");
            hash.update(token.as_bytes());
        }
    }
    hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Where Docker's `config.json` is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, when it exists.
    #[default]
    Default,
    /// This file.
    File(PathBuf),
    /// Not read at all.
    Disabled,
}

impl DockerConfig {
    fn path(&self) -> Option<PathBuf> {
        match self {
            DockerConfig::Default => std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
                .map(|dir| dir.join("config.json")),
            DockerConfig::File(path) => Some(path.clone()),
            DockerConfig::Disabled => None,
        }
    }
}

/// The credentials of every host, by precedence: pull secrets set at run time, static
/// credentials from the configuration, then Docker's `config.json`; anonymous otherwise.
pub(crate) struct Credentials {
    configured: HashMap<String, Credential>,
    docker_config: DockerConfig,
    pull_secrets: RwLock<HashMap<String, Credential>>,
    resolved: RwLock<HashMap<String, Credential>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts = |m: &HashMap<String, Credential>| m.keys().cloned().collect::<Vec<_>>();
        f.debug_struct("Credentials")
            .field("configured_hosts", &hosts(&self.configured))
            .field("docker_config", &self.docker_config)
            .field("pull_secret_hosts", &self.pull_secrets.read().map(|m| hosts(&m)).unwrap_or_default())
            .finish()
    }
}

impl Credentials {
    pub(crate) fn new(configured: &HashMap<String, Credential>, docker_config: DockerConfig) -> Self {
        let configured = configured.iter().map(|(host, c)| (normalise_host(host), c.clone())).collect();
        Credentials { configured, docker_config, pull_secrets: RwLock::default(), resolved: RwLock::default() }
    }

    /// Adds the credentials of a `.dockerconfigjson` pull secret (`{"auths": {host: …}}`), named
    /// `source` in errors; they take precedence over every other source for their hosts.
    pub(crate) fn add_pull_secret(&self, source: &str, dockerconfigjson: &[u8]) -> Result<Vec<String>, Error> {
        let parsed = docker_config_entries(dockerconfigjson)
            .map_err(|why| Error::invalid(Location::file(source), format!("not a dockerconfigjson: {why}")))?;
        let mut added = Vec::new();
        let mut secrets = self.pull_secrets.write().unwrap_or_else(|p| p.into_inner());
        for key in parsed {
            let credential = docker_credential::get_credential_from_reader(dockerconfigjson, &key)
                .map_err(|e| Error::invalid(Location::file(source), format!("entry {key:?}: {}", describe(&e))))?;
            let host = normalise_host(&key);
            secrets.insert(host.clone(), from_docker(credential));
            added.push(host);
        }
        self.resolved.write().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(added)
    }

    /// The credential for `host` (as in an [`flux_core::ImageRepo`]); the first lookup may run a
    /// credential helper, later ones are answered from memory.
    pub(crate) async fn for_host(&self, host: &str) -> Result<Credential, Error> {
        if let Some(c) = self.pull_secrets.read().unwrap_or_else(|p| p.into_inner()).get(host) {
            return Ok(c.clone());
        }
        if let Some(c) = self.configured.get(host) {
            return Ok(c.clone());
        }
        if let Some(c) = self.resolved.read().unwrap_or_else(|p| p.into_inner()).get(host) {
            return Ok(c.clone());
        }
        let found = match self.docker_config.path() {
            Some(path) => {
                let host_owned = host.to_owned();
                tokio::task::spawn_blocking(move || from_docker_config(&path, &host_owned))
                    .await
                    .map_err(|e| Error::other(format!("credential lookup for {host} did not finish: {e}")))??
            }
            None => Credential::Anonymous,
        };
        self.resolved.write().unwrap_or_else(|p| p.into_inner()).insert(host.to_owned(), found.clone());
        Ok(found)
    }
}

/// The hosts named in a docker config (`auths` keys, and `credHelpers` keys).
fn docker_config_entries(json: &[u8]) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: HashMap<String, serde::de::IgnoredAny>,
    }
    let config: Config = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(config.auths.into_keys().collect())
}

fn from_docker_config(path: &std::path::Path, host: &str) -> Result<Credential, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credential::Anonymous),
        Err(e) => return Err(Error::other(format!("reading {}: {e}", path.display()))),
    };
    for key in docker_keys(host) {
        match docker_credential::get_credential_from_reader(bytes.as_slice(), &key) {
            Ok(c) => return Ok(from_docker(c)),
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            Err(e) => {
                return Err(Error::unauthorized(format!(
                    "credentials for {host} from {}: {}",
                    path.display(),
                    describe(&e)
                )));
            }
        }
    }
    Ok(Credential::Anonymous)
}

/// The keys Docker may have stored `host` under.
fn docker_keys(host: &str) -> Vec<String> {
    if host == flux_core::image::DOCKER_HUB {
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
            .map(String::from)
            .to_vec();
    }
    vec![host.to_owned(), format!("https://{host}"), format!("http://{host}")]
}

/// A config key (`https://index.docker.io/v1/`, `ghcr.io`, `http://host:5000/`) as a host.
pub(crate) fn normalise_host(key: &str) -> String {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => flux_core::image::DOCKER_HUB.to_owned(),
        h => h.to_owned(),
    }
}

fn from_docker(c: DockerCredential) -> Credential {
    match c {
        DockerCredential::UsernamePassword(username, password) => Credential::Basic { username, password },
        DockerCredential::IdentityToken(token) => Credential::Token(token),
    }
}

/// What went wrong, without the helper's output (which may hold the secret).
fn describe(e: &CredentialRetrievalError) -> String {
    match e {
        CredentialRetrievalError::HelperFailure { helper, .. } => format!("credential helper {helper:?} failed"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?} {:?}", Credential::basic("robot", "hunter2"), Credential::Token("tok-s3cret".into()));
        assert!(shown.contains("robot"));
        assert!(!shown.contains("hunter2") && !shown.contains("tok-s3cret"), "{shown}");
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalise_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_host("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(normalise_host("ghcr.io"), "ghcr.io");
    }

    #[tokio::test]
    async fn pull_secrets_win_and_errors_name_the_secret() {
        let creds = Credentials::new(
            &HashMap::from([("reg.example".to_owned(), Credential::basic("static", "pw"))]),
            DockerConfig::Disabled,
        );
        let secret = br#"{"auths":{"https://reg.example":{"auth":"cm9ib3Q6czNjcmV0"}}}"#;
        assert_eq!(creds.add_pull_secret("team/regcred", secret).unwrap(), vec!["reg.example"]);
        assert_eq!(creds.for_host("reg.example").await.unwrap(), Credential::basic("robot", "s3cret"));
        assert_eq!(creds.for_host("other.example").await.unwrap(), Credential::Anonymous);

        let err = creds.add_pull_secret("team/broken", b"{not json").unwrap_err();
        assert!(err.to_string().contains("team/broken"), "{err}");
        let err = creds.add_pull_secret("team/bad-auth", br#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap_err();
        assert!(err.to_string().contains("team/bad-auth"), "{err}");
    }

    #[test]
    fn pull_credentials_keep_the_first_per_host_and_hide_secrets() {
        let mut pull = PullCredentials::new();
        pull.insert("https://reg.example/v1/", Credential::basic("own", "first-pw"));
        pull.insert("reg.example", Credential::basic("account", "second-pw"));
        assert_eq!(pull.iter().collect::<Vec<_>>(), [("reg.example", &Credential::basic("own", "first-pw"))]);
        assert_eq!(pull.hosts().collect::<Vec<_>>(), ["reg.example"]);
        let shown = format!("{pull:?}");
        assert!(shown.contains("reg.example") && !shown.contains("pw") && !shown.contains("own"), "{shown}");
    }

    #[test]
    fn identities_differ_by_credential_and_salt_and_hide_it() {
        let a = Credential::basic("u", "p1");
        let b = Credential::basic("u", "p2");
        assert_eq!(identity("s", "h", &a), identity("s", "h", &a));
        assert_ne!(identity("s", "h", &a), identity("s", "h", &b));
        assert_ne!(identity("s", "h", &a), identity("t", "h", &a));
        assert_ne!(identity("s", "h", &a), identity("s", "other", &a));
        assert!(!identity("s", "h", &a).contains("p1"));
    }

    #[tokio::test]
    async fn docker_config_json_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#).unwrap();
        let creds = Credentials::new(&HashMap::new(), DockerConfig::File(path));
        assert_eq!(creds.for_host("docker.io").await.unwrap(), Credential::basic("u", "p"));
        assert_eq!(creds.for_host("ghcr.io").await.unwrap(), Credential::Anonymous);
    }
}
