//! Registry credentials of a workload: its pod spec's `imagePullSecrets` and those of its
//! service account, read from `kubernetes.io/dockerconfigjson` (and legacy `dockercfg`) Secrets,
//! for the registry adapter to authenticate with.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use flux_core::workload::pod_spec_path;
use flux_core::{Error, KubeObject, ObjectRef, ResourceId, Result};
use serde_json::Value;

use crate::cluster::KubeCluster;

/// A user name and password for one registry host. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The registry host as the Secret names it, normalised (`docker.io` for Docker Hub, no
    /// scheme, no path).
    pub registry: String,
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Service accounts and Secrets already read, so that one pass over many workloads reads each
/// once (Flux v1 kept the same per-namespace cache). Start a new one for each pass: Secrets
/// change. `Debug` shows counts only.
#[derive(Default)]
pub struct PullSecretCache {
    accounts: HashMap<(String, String), Vec<String>>,
    secrets: HashMap<(String, String), Vec<RegistryCredential>>,
}

impl fmt::Debug for PullSecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullSecretCache")
            .field("accounts", &self.accounts.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl KubeCluster {
    /// The credentials a workload's pods pull with, by registry host: its pod spec's
    /// `imagePullSecrets`, then its service account's (default `default`). The first Secret
    /// naming a host wins, so the workload's own win over its service account's (as in Flux v1,
    /// and as the kubelet tries them). Secrets that are missing or unreadable are skipped
    /// (logged); a workload that does not exist is [`Error::NotFound`].
    pub async fn pull_credentials(&self, workload: &ObjectRef) -> Result<BTreeMap<String, RegistryCredential>> {
        let object =
            flux_core::Cluster::get(self, workload).await?.ok_or_else(|| Error::not_found(workload.id.to_string()))?;
        self.pull_credentials_of(&object, &mut PullSecretCache::default()).await
    }

    /// As [`KubeCluster::pull_credentials`], for a workload as given (from git, say: its pod
    /// spec names the secrets and service account), reading the service account and Secrets
    /// from the cluster unless `seen` has them already.
    ///
    /// # Errors
    /// When the service account cannot be read (a missing one has no pull secrets).
    pub async fn pull_credentials_of(
        &self,
        workload: &KubeObject,
        seen: &mut PullSecretCache,
    ) -> Result<BTreeMap<String, RegistryCredential>> {
        let namespace = workload.namespace().unwrap_or("default").to_owned();
        let Some(spec) = pod_spec_path(workload.kind()).and_then(|p| workload.pointer(p)) else {
            return Ok(BTreeMap::new());
        };
        let mut secrets = secret_names(spec.get("imagePullSecrets"));
        let account = spec
            .get("serviceAccountName")
            .or_else(|| spec.get("serviceAccount"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let account_key = (namespace.clone(), account.to_owned());
        if !seen.accounts.contains_key(&account_key) {
            let account_ref = ObjectRef {
                api_version: "v1".into(),
                id: ResourceId::namespaced(&namespace, "ServiceAccount", account),
            };
            let names = flux_core::Cluster::get(self, &account_ref)
                .await?
                .map(|a| secret_names(a.pointer(&["imagePullSecrets"])))
                .unwrap_or_default();
            seen.accounts.insert(account_key.clone(), names);
        }
        secrets.extend(seen.accounts.get(&account_key).cloned().unwrap_or_default());
        let mut credentials = BTreeMap::new();
        for name in secrets {
            let key = (namespace.clone(), name.clone());
            if !seen.secrets.contains_key(&key) {
                let found = self.read_pull_secret(workload.id(), &namespace, &name).await;
                seen.secrets.insert(key.clone(), found);
            }
            for credential in seen.secrets.get(&key).into_iter().flatten() {
                credentials.entry(credential.registry.clone()).or_insert_with(|| credential.clone());
            }
        }
        Ok(credentials)
    }

    /// The credentials in one Secret; none (logged, without the content) when it is missing,
    /// unreadable or not a pull secret.
    async fn read_pull_secret(&self, workload: &ResourceId, namespace: &str, name: &str) -> Vec<RegistryCredential> {
        let secret_ref = ObjectRef { api_version: "v1".into(), id: ResourceId::namespaced(namespace, "Secret", name) };
        match flux_core::Cluster::get(self, &secret_ref).await {
            Ok(Some(secret)) => docker_credentials(&secret).unwrap_or_else(|e| {
                tracing::warn!(%workload, error = %e, "image pull secret skipped");
                Vec::new()
            }),
            Ok(None) => {
                tracing::warn!(%workload, secret = %name, "image pull secret not found");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(%workload, secret = %name, error = %e, "image pull secret unreadable");
                Vec::new()
            }
        }
    }
}

fn secret_names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The credentials of a `dockerconfigjson` or `dockercfg` Secret. Errors name the Secret, never
/// its content.
pub fn docker_credentials(secret: &KubeObject) -> Result<Vec<RegistryCredential>> {
    let at = || flux_core::Location::file(secret.id().to_string());
    let (key, nested) = match secret.pointer(&["type"]).and_then(Value::as_str) {
        Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", true),
        Some("kubernetes.io/dockercfg") => (".dockercfg", false),
        other => return Err(Error::invalid(at(), format!("not an image pull secret (type {other:?})"))),
    };
    let encoded = secret
        .pointer(&["data", key])
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(at(), format!("no data.{key}")))?;
    let decoded = base64_decode(encoded).ok_or_else(|| Error::invalid(at(), format!("data.{key} is not base64")))?;
    let config: Value =
        serde_json::from_slice(&decoded).map_err(|_| Error::invalid(at(), format!("data.{key} is not JSON")))?;
    let auths = if nested { config.get("auths") } else { Some(&config) };
    let Some(auths) = auths.and_then(Value::as_object) else {
        return Err(Error::invalid(at(), format!("data.{key} has no auths")));
    };
    let mut found = Vec::new();
    for (host, entry) in auths {
        let text = |k: &str| entry.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (username, password) = match (text("username"), text("password"), text("auth")) {
            (Some(u), Some(p), _) => (u.to_owned(), p.to_owned()),
            (_, _, Some(auth)) => {
                let pair = base64_decode(auth).and_then(|b| String::from_utf8(b).ok());
                match pair.as_deref().and_then(|p| p.split_once(':')) {
                    Some((u, p)) => (u.to_owned(), p.to_owned()),
                    None => {
                        return Err(Error::invalid(at(), format!("the auth of {host} is not base64 user:password")));
                    }
                }
            }
            _ => return Err(Error::invalid(at(), format!("no credentials for {host}"))),
        };
        found.push(RegistryCredential { registry: normalise_host(host), username, password });
    }
    Ok(found)
}

/// `https://index.docker.io/v1/` → `docker.io`; `ghcr.io/team` → `ghcr.io`.
fn normalise_host(host: &str) -> String {
    let host = host.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// Secrets' data is standard base64; some tools leave out the padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").as_deref(), Some(&b"user:pass"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("a!b"), None);
    }

    #[test]
    fn docker_config_json_is_read_and_redacted() {
        // {"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"ghcr.io":{"username":"bot","password":"s3cret"}}}
        let config = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"ghcr.io":{"username":"bot","password":"s3cret"}}}"#;
        let encoded = encode(config.as_bytes());
        let secret = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull", "namespace": "n"},
                "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": encoded}}),
            None,
        )
        .expect("valid secret");
        let mut found = docker_credentials(&secret).expect("credentials");
        found.sort_by(|a, b| a.registry.cmp(&b.registry));
        assert_eq!(found[0].registry, "docker.io");
        assert_eq!((found[0].username.as_str(), found[0].password.as_str()), ("user", "pass"));
        assert_eq!((found[1].registry.as_str(), found[1].password.as_str()), ("ghcr.io", "s3cret"));
        let shown = format!("{found:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("pass\""), "{shown}");
    }

    #[test]
    fn a_secret_of_another_type_is_refused_by_name() {
        let secret = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "n"}, "type": "kubernetes.io/tls"}),
            None,
        )
        .expect("valid secret");
        let err = docker_credentials(&secret).expect_err("not a pull secret").to_string();
        assert!(err.contains("n:secret/tls"), "{err}");
    }

    fn encode(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
