//! Kubernetes Events on applied objects, so `kubectl describe` shows sync outcomes.
//!
//! Best effort: an Event that cannot be recorded is logged, never an error of the apply.

use flux_core::{ApplyOutcome, ApplyResult, KubeObject};
use futures::{StreamExt, stream};
use kube::api::PostParams;
use kube::core::Request;
use serde_json::json;

use crate::cluster::Shared;
use crate::request::send;

impl Shared {
    /// Records one Event per created, configured or failed object (`Unchanged` ones are quiet).
    pub(crate) async fn record_events(&self, objects: &[KubeObject], results: &[ApplyResult]) {
        let worth: Vec<_> =
            objects.iter().zip(results).filter(|(_, r)| !matches!(r.outcome, ApplyOutcome::Unchanged)).collect();
        let records: Vec<_> =
            worth.into_iter().map(|(object, result)| self.record_event(object, &result.outcome)).collect();
        stream::iter(records).buffer_unordered(self.options.concurrency).collect::<Vec<()>>().await;
    }

    async fn record_event(&self, object: &KubeObject, outcome: &ApplyOutcome) {
        let (kind, reason, message) = match outcome {
            ApplyOutcome::Created => ("Normal", "SyncCreated", "created by sync".to_owned()),
            ApplyOutcome::Configured => ("Normal", "SyncConfigured", "configured by sync".to_owned()),
            ApplyOutcome::Failed { reason } => ("Warning", "SyncFailed", format!("sync failed: {reason}")),
            // The call failed as a whole: the server would not take an Event either.
            ApplyOutcome::Unchanged | ApplyOutcome::Interrupted { .. } => return,
        };
        let namespace = object.namespace().unwrap_or("default");
        let now = jiff::Timestamp::now();
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{:x}", object.name(), now.as_nanosecond()), "namespace": namespace},
            "involvedObject": {"apiVersion": object.api_version(), "kind": object.kind(), "name": object.name(), "namespace": object.namespace()},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": now.to_string(), "lastTimestamp": now.to_string(),
            "source": {"component": self.options.field_manager},
            "reportingComponent": self.options.field_manager,
        });
        let path = format!("/api/v1/namespaces/{namespace}/events");
        let request =
            match serde_json::to_vec(&event).map(|body| Request::new(path).create(&PostParams::default(), body)) {
                Ok(Ok(request)) => request,
                _ => return,
            };
        if let Err(e) = send(&self.client, request).await {
            tracing::warn!(object = %object.id(), error = %e.reason(), "cannot record an Event");
        }
    }
}
