//! Prometheus metrics, served on `--listen-metrics`: syncs (duration, outcome, objects applied
//! and pruned), automation updates, and registry requests by host and outcome (through a
//! metering wrapper of the Registry port) with the cache's effect.

use std::sync::Arc;

use async_trait::async_trait;
use flux_core::sync::SyncReport;
use flux_core::{ImageInfo, ImageRef, ImageRepo, Registry};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = Vec<(&'static str, String)>;

/// Every metric of the daemon. Clones share them.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<prometheus_client::registry::Registry>,
    sync_duration: Family<Labels, Histogram, fn() -> Histogram>,
    syncs: Family<Labels, Counter>,
    applied: Counter,
    pruned: Counter,
    automation_updates: Counter,
    registry_calls: Family<Labels, Counter>,
    registry_http: Gauge,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("flux");
        let sync_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        let syncs = Family::<Labels, Counter>::default();
        let (applied, pruned, automation_updates) = (Counter::default(), Counter::default(), Counter::default());
        let registry_calls = Family::<Labels, Counter>::default();
        let registry_http = Gauge::default();
        registry.register("sync_duration_seconds", "How long syncs took, by outcome", sync_duration.clone());
        registry.register("syncs", "Syncs, by outcome", syncs.clone());
        registry.register("sync_objects_applied", "Objects sent to the cluster", applied.clone());
        registry.register("sync_objects_pruned", "Objects pruned (or, with GC dry-run, reported)", pruned.clone());
        registry.register("automation_updates", "Image updates committed by automation", automation_updates.clone());
        registry.register(
            "registry_calls",
            "Registry lookups (tags, image metadata) by host, call and outcome",
            registry_calls.clone(),
        );
        registry.register(
            "registry_http_requests",
            "HTTP requests sent to registries; lookups minus these were answered by the cache",
            registry_http.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            sync_duration,
            syncs,
            applied,
            pruned,
            automation_updates,
            registry_calls,
            registry_http,
        }
    }

    /// Records a sync.
    pub(crate) fn sync(&self, report: &SyncReport) {
        let outcome = vec![("outcome", if report.is_success() { "success" } else { "failure" }.to_owned())];
        self.sync_duration.get_or_create(&outcome).observe(report.duration.as_secs_f64());
        self.syncs.get_or_create(&outcome).inc();
        self.applied.inc_by(report.applied.len() as u64);
        self.pruned.inc_by(report.pruned.len() as u64);
    }

    /// Records image updates committed by automation.
    pub(crate) fn automation_updates(&self, count: usize) {
        self.automation_updates.inc_by(count as u64);
    }

    /// Sets the count of HTTP requests the registry adapter made.
    pub(crate) fn registry_http_requests(&self, count: u64) {
        self.registry_http.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn registry_call(&self, host: &str, call: &'static str, ok: bool) {
        let labels = vec![
            ("host", host.to_owned()),
            ("call", call.to_owned()),
            ("outcome", if ok { "ok" } else { "error" }.to_owned()),
        ];
        self.registry_calls.get_or_create(&labels).inc();
    }

    /// The metrics in Prometheus' text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The Registry port, counted per host and outcome.
pub(crate) struct MeteredRegistry {
    inner: Arc<dyn Registry>,
    metrics: Metrics,
}

impl MeteredRegistry {
    /// Counts the calls made to `inner`.
    pub(crate) fn new(inner: Arc<dyn Registry>, metrics: Metrics) -> Self {
        MeteredRegistry { inner, metrics }
    }
}

#[async_trait]
impl Registry for MeteredRegistry {
    async fn tags(&self, repository: &ImageRepo) -> flux_core::Result<Vec<String>> {
        let result = self.inner.tags(repository).await;
        self.metrics.registry_call(repository.registry(), "tags", result.is_ok());
        result
    }

    async fn image_info(&self, image: &ImageRef) -> flux_core::Result<ImageInfo> {
        let result = self.inner.image_info(image).await;
        self.metrics.registry_call(image.repository().registry(), "image_info", result.is_ok());
        result
    }
}

/// Serves `/metrics` on `addr` until shutdown.
pub(crate) async fn serve(
    metrics: Metrics,
    addr: std::net::SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}
