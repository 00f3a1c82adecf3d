//! Flux v1's `--sync-state=secret`: the sync marker kept in the annotation
//! `flux.weave.works/sync-hwm` of the deploy-key Secret instead of a git tag, for repositories
//! fluxd may not push to (`--git-readonly` forces it, as v1).

use std::sync::Arc;

use async_trait::async_trait;
use flux_core::{CommitRequest, Result, Revision, Source, SourceFile};
use flux_k8s::KubeSecret;

/// The annotation holding the revision last synced (Flux v1's `syncMarkerKey`).
pub(crate) const SYNC_MARKER_ANNOTATION: &str = "flux.weave.works/sync-hwm";

/// A source whose sync marker is the Secret's annotation; everything else is the inner source's.
pub(crate) struct SecretMarker {
    inner: Arc<dyn Source>,
    secret: KubeSecret,
}

impl SecretMarker {
    /// `inner` with its marker in `secret`.
    pub(crate) fn new(inner: Arc<dyn Source>, secret: KubeSecret) -> Self {
        SecretMarker { inner, secret }
    }
}

#[async_trait]
impl Source for SecretMarker {
    async fn refresh(&self) -> Result<Revision> {
        self.inner.refresh().await
    }

    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>> {
        self.inner.files(revision, paths).await
    }

    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>> {
        self.inner.read_file(revision, path).await
    }

    async fn commit(&self, request: &CommitRequest) -> Result<Revision> {
        self.inner.commit(request).await
    }

    /// The annotation's revision; `None` when it is missing or empty (v1 wrote `""` for none).
    async fn sync_marker(&self) -> Result<Option<Revision>> {
        let value = self.secret.annotation(SYNC_MARKER_ANNOTATION).await?;
        Ok(value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(Revision::new))
    }

    async fn set_sync_marker(&self, revision: &Revision) -> Result<()> {
        self.secret.set_annotation(SYNC_MARKER_ANNOTATION, revision.as_str()).await
    }
}
