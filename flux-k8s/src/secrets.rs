//! One Secret, read and patched through the API server: the deploy key of Flux v1's
//! `--k8s-secret-name` and the annotation of its `--sync-state=secret`.
//!
//! Values are never logged nor shown by `Debug`, and errors name the Secret and the server's
//! reason, never a value.

use std::time::Duration;

use flux_core::{Error, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::KubeCluster;
use crate::errors::kube_error;

/// How long one request about the Secret may take (the client's own timeouts apply too).
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(30);

/// A value read from a Secret: its bytes, shown by nothing but [`SecretValue::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// The bytes, for the one use that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({} bytes, redacted)", self.0.len())
    }
}

/// One Secret by namespace and name, over a [`KubeCluster`]'s client.
#[derive(Clone)]
pub struct KubeSecret {
    api: Api<Secret>,
    namespace: String,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for KubeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecret").field("namespace", &self.namespace).field("name", &self.name).finish()
    }
}

impl KubeSecret {
    /// The Secret `name` in `namespace` (`None`: the client's default namespace, the
    /// kubeconfig context's or the service account's).
    pub fn new(cluster: &KubeCluster, namespace: Option<&str>, name: &str) -> Self {
        let client = cluster.client().clone();
        let namespace = namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
        KubeSecret {
            api: Api::namespaced(client, &namespace),
            namespace,
            name: name.to_owned(),
            timeout: SECRET_TIMEOUT,
        }
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `namespace/name`, for messages.
    fn what(&self, doing: &str) -> String {
        format!("{doing} Secret {}/{}", self.namespace, self.name)
    }

    async fn bounded<T>(&self, doing: &str, call: impl Future<Output = kube::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer.map_err(|e| kube_error(&self.what(doing), e)),
            Err(_) => Err(Error::transient(format!("{}: no answer within {:?}", self.what(doing), self.timeout))),
        }
    }

    async fn get(&self) -> Result<Secret> {
        self.bounded("reading", self.api.get(&self.name)).await
    }

    /// The value of data key `key`; `None` when the key is missing or empty.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the Secret does not exist; the server's refusal otherwise.
    pub async fn data(&self, key: &str) -> Result<Option<SecretValue>> {
        Ok(self.data_at(key).await?.0)
    }

    /// As [`KubeSecret::data`], with the Secret's `resourceVersion` as read (for
    /// [`KubeSecret::set_data_at`]).
    ///
    /// # Errors
    /// As [`KubeSecret::data`].
    pub async fn data_at(&self, key: &str) -> Result<(Option<SecretValue>, String)> {
        let secret = self.get().await?;
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let value = secret.data.and_then(|mut d| d.remove(key)).map(|ByteString(bytes)| bytes);
        Ok((value.filter(|v| !v.is_empty()).map(SecretValue), version))
    }

    /// Sets these data keys (a merge patch: other keys are kept).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the Secret does not exist (it is never created here); the
    /// server's refusal otherwise.
    pub async fn set_data(&self, entries: &[(&str, &[u8])]) -> Result<()> {
        self.patch_data(entries, None).await
    }

    /// As [`KubeSecret::set_data`], only if the Secret is still at `version` (two writers from
    /// the same read never both win).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the Secret changed since `version`; as [`KubeSecret::set_data`].
    pub async fn set_data_at(&self, entries: &[(&str, &[u8])], version: &str) -> Result<()> {
        self.patch_data(entries, Some(version)).await
    }

    async fn patch_data(&self, entries: &[(&str, &[u8])], version: Option<&str>) -> Result<()> {
        use base64::Engine as _;
        let data: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), base64::engine::general_purpose::STANDARD.encode(v).into()))
            .collect();
        let mut patch = json!({ "data": data });
        if let Some(version) = version {
            // A merge patch carrying metadata.resourceVersion is refused (409) unless the Secret
            // is still at that version.
            patch["metadata"] = json!({ "resourceVersion": version });
        }
        self.bounded("writing", self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
        Ok(())
    }

    /// The value of annotation `key`, if set (an empty value is `Some("")`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the Secret does not exist; the server's refusal otherwise.
    pub async fn annotation(&self, key: &str) -> Result<Option<String>> {
        let secret = self.get().await?;
        Ok(secret.metadata.annotations.and_then(|mut a| a.remove(key)))
    }

    /// Sets annotation `key` to `value` (a merge patch: everything else is kept).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the Secret does not exist; the server's refusal otherwise.
    pub async fn set_annotation(&self, key: &str, value: &str) -> Result<()> {
        let patch = json!({ "metadata": { "annotations": { key: value } } });
        self.bounded("annotating", self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
        Ok(())
    }
}
