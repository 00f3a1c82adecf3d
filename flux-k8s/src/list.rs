//! Paged lists of one kind, in one namespace or across all, skipping what the handle may not see.

use flux_core::{Error, Result};
use kube::api::ListParams;
use kube::core::ObjectList;
use serde::de::DeserializeOwned;

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::errors::Refusal;
use crate::request::fetch;
use crate::target::collection;

/// Objects per page.
const PAGE: u32 = 500;

/// Whole objects, or only their metadata (`PartialObjectMetadataList`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    Full,
    Metadata,
}

impl Shared {
    /// Every object of `kind` in `namespace` (or all) matching `selector`, page by page. None
    /// when the handle may not list the kind there (403) or the kind went away (404, 405): a
    /// least-privilege identity sees what it may.
    pub(crate) async fn list<T: DeserializeOwned + Clone>(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: Option<&str>,
        detail: Detail,
    ) -> Result<Vec<T>> {
        match self.list_or_refusal(kind, namespace, selector, detail).await {
            Ok(items) => Ok(items),
            Err(Refusal::Object(status)) if matches!(status.code, 403..=405) => {
                tracing::debug!(kind = %kind.resource.kind, ?namespace, code = status.code, "not listable here: skipped");
                Ok(Vec::new())
            }
            Err(refusal) => Err(refusal.into_error(&format!("listing {}", kind.resource.kind))),
        }
    }

    /// Every object of `kind` in `namespace` (or all) matching `selector`, page by page, or the
    /// server's refusal.
    pub(crate) async fn list_or_refusal<T: DeserializeOwned + Clone>(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: Option<&str>,
        detail: Detail,
    ) -> Result<Vec<T>, Refusal> {
        self.list_converted(kind, namespace, selector, detail, |item| item).await
    }

    /// [`Shared::list_or_refusal`], each item turned by `convert` as its page arrives: only one
    /// page of whole items is held at a time.
    pub(crate) async fn list_converted<T: DeserializeOwned + Clone, U>(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: Option<&str>,
        detail: Detail,
        mut convert: impl FnMut(T) -> U,
    ) -> Result<Vec<U>, Refusal> {
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(PAGE);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        loop {
            let request = match detail {
                Detail::Full => collection(kind, namespace).list(&params),
                Detail::Metadata => collection(kind, namespace).list_metadata(&params),
            }
            .map_err(|e| Refusal::Fatal(Error::other_with("cannot build a list request", e)))?;
            let page: ObjectList<T> = fetch(&self.client, request).await?;
            items.extend(page.items.into_iter().map(&mut convert));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(items),
            }
        }
    }
}
