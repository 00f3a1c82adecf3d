//! Prometheus metrics, served at `/metrics` on the API's address (as Flux v1 served them) and on
//! `--listen-metrics`: syncs (duration, outcome, objects applied, failed and pruned) and
//! automation updates by `unit`, and registry requests by host and outcome (through a metering
//! wrapper of the Registry port) with the cache's effect. Flux v1's metrics are there too under
//! v1's names, types, buckets and labels (`success="true|false"`), with a `unit` label added:
//! `flux_daemon_sync_duration_seconds`, `flux_daemon_sync_manifests`,
//! `flux_daemon_job_duration_seconds`, `flux_daemon_queue_duration_seconds`,
//! `flux_daemon_queue_length_count`, `flux_git_ready` and `flux_registry_fetch_duration_seconds`.

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
pub struct Metrics {
    registry: Arc<prometheus_client::registry::Registry>,
    sync_duration: Family<Labels, Histogram, fn() -> Histogram>,
    syncs: Family<Labels, Counter>,
    applied: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    pruned: Family<Labels, Counter>,
    automation_updates: Family<Labels, Counter>,
    registry_calls: Family<Labels, Counter>,
    registry_http: Gauge,
    v1: V1Metrics,
}

/// Flux v1's metrics (`pkg/daemon/metrics.go`, `pkg/git/metrics.go`,
/// `pkg/registry/monitoring.go`), with a `unit` label.
#[derive(Clone)]
struct V1Metrics {
    sync_duration: Family<Labels, Histogram, fn() -> Histogram>,
    sync_manifests: Family<Labels, Gauge>,
    job_duration: Family<Labels, Histogram, fn() -> Histogram>,
    queue_duration: Family<Labels, Histogram, fn() -> Histogram>,
    queue_length: Family<Labels, Gauge>,
    git_ready: Family<Labels, Gauge>,
    registry_fetch_duration: Family<Labels, Histogram, fn() -> Histogram>,
}

fn v1_sync_buckets() -> Histogram {
    Histogram::new([0.5, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 75.0, 90.0, 120.0, 240.0])
}

fn v1_job_buckets() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0])
}

/// Prometheus' default buckets (`prometheus.DefBuckets`).
fn v1_default_buckets() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

fn success(ok: bool) -> String {
    if ok { "true" } else { "false" }.to_owned()
}

impl V1Metrics {
    fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let v1 = V1Metrics {
            sync_duration: Family::new_with_constructor(v1_sync_buckets),
            sync_manifests: Family::default(),
            job_duration: Family::new_with_constructor(v1_job_buckets),
            queue_duration: Family::new_with_constructor(v1_job_buckets),
            queue_length: Family::default(),
            git_ready: Family::default(),
            registry_fetch_duration: Family::new_with_constructor(v1_default_buckets),
        };
        registry.register(
            "daemon_sync_duration_seconds",
            "Duration of git-to-cluster synchronisation, in seconds",
            v1.sync_duration.clone(),
        );
        registry.register("daemon_sync_manifests", "Number of synchronized manifests", v1.sync_manifests.clone());
        registry.register(
            "daemon_job_duration_seconds",
            "Duration of job execution, in seconds",
            v1.job_duration.clone(),
        );
        registry.register(
            "daemon_queue_duration_seconds",
            "Duration of time spent in the job queue before execution, in seconds",
            v1.queue_duration.clone(),
        );
        registry.register(
            "daemon_queue_length_count",
            "Count of jobs waiting in the queue to be run",
            v1.queue_length.clone(),
        );
        registry.register("git_ready", "Status of the git repository", v1.git_ready.clone());
        registry.register(
            "registry_fetch_duration_seconds",
            "Duration of image metadata requests (from cache), in seconds",
            v1.registry_fetch_duration.clone(),
        );
        v1
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("flux");
        let sync_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        let syncs = Family::<Labels, Counter>::default();
        let (applied, failed, pruned, automation_updates) = (
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
        );
        let registry_calls = Family::<Labels, Counter>::default();
        let registry_http = Gauge::default();
        registry.register("sync_duration_seconds", "How long syncs took, by outcome", sync_duration.clone());
        registry.register("syncs", "Syncs, by outcome", syncs.clone());
        registry.register("sync_objects_applied", "Objects sent to the cluster", applied.clone());
        registry.register(
            "sync_objects_failed",
            "Objects sent to the cluster and not applied (refused, or the call failed); retried next sync",
            failed.clone(),
        );
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
        let v1 = V1Metrics::register(&mut registry);
        Metrics {
            v1,
            registry: Arc::new(registry),
            sync_duration,
            syncs,
            applied,
            failed,
            pruned,
            automation_updates,
            registry_calls,
            registry_http,
        }
    }

    /// Records a sync of `unit`.
    pub fn sync(&self, unit: &str, report: &SyncReport) {
        let outcome = if report.is_success() { "success" } else { "failure" }.to_owned();
        let labels = vec![("unit", unit.to_owned()), ("outcome", outcome)];
        self.sync_duration.get_or_create(&labels).observe(report.duration.as_secs_f64());
        self.syncs.get_or_create(&labels).inc();
        let unit = vec![("unit", unit.to_owned())];
        self.applied.get_or_create(&unit).inc_by(report.applied.len() as u64);
        self.failed.get_or_create(&unit).inc_by(report.failed as u64);
        self.pruned.get_or_create(&unit).inc_by(report.pruned.len() as u64);
        let v1 = |ok: bool| vec![("unit", unit[0].1.clone()), ("success", success(ok))];
        self.v1.sync_duration.get_or_create(&v1(report.is_success())).observe(report.duration.as_secs_f64());
        // v1: the objects applied, and those that failed.
        let applied = i64::try_from(report.applied.len()).unwrap_or(i64::MAX);
        self.v1.sync_manifests.get_or_create(&v1(true)).set(applied);
        self.v1.sync_manifests.get_or_create(&v1(false)).set(i64::try_from(report.failed).unwrap_or(i64::MAX));
    }

    /// Records a job of `unit` queued.
    pub fn job_queued(&self, unit: &str) {
        self.v1.queue_length.get_or_create(&vec![("unit", unit.to_owned())]).inc();
    }

    /// Records a job of `unit` started after `waited` in the queue.
    pub fn job_started(&self, unit: &str, waited: std::time::Duration) {
        let labels = vec![("unit", unit.to_owned())];
        self.v1.queue_length.get_or_create(&labels).dec();
        self.v1.queue_duration.get_or_create(&labels).observe(waited.as_secs_f64());
    }

    /// Records a job of `unit` finished after `took`.
    pub fn job_finished(&self, unit: &str, took: std::time::Duration, ok: bool) {
        let labels = vec![("unit", unit.to_owned()), ("success", success(ok))];
        self.v1.job_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Records whether `unit`'s repository could be fetched (Flux v1's `flux_git_ready`).
    pub fn git_ready(&self, unit: &str, ready: bool) {
        self.v1.git_ready.get_or_create(&vec![("unit", unit.to_owned())]).set(i64::from(ready));
    }

    /// Records image updates committed by automation in `unit`.
    pub fn automation_updates(&self, unit: &str, count: usize) {
        self.automation_updates.get_or_create(&vec![("unit", unit.to_owned())]).inc_by(count as u64);
    }

    /// Sets the count of HTTP requests the registry adapter made.
    pub fn registry_http_requests(&self, count: u64) {
        self.registry_http.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn registry_call(&self, host: &str, call: &'static str, ok: bool, took: std::time::Duration) {
        self.v1.registry_fetch_duration.get_or_create(&vec![("success", success(ok))]).observe(took.as_secs_f64());
        let labels = vec![
            ("host", host.to_owned()),
            ("call", call.to_owned()),
            ("outcome", if ok { "ok" } else { "error" }.to_owned()),
        ];
        self.registry_calls.get_or_create(&labels).inc();
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The Registry port, counted per host and outcome.
pub struct MeteredRegistry {
    inner: Arc<dyn Registry>,
    metrics: Metrics,
}

impl MeteredRegistry {
    /// Counts the calls made to `inner`.
    pub fn new(inner: Arc<dyn Registry>, metrics: Metrics) -> Self {
        MeteredRegistry { inner, metrics }
    }
}

#[async_trait]
impl Registry for MeteredRegistry {
    async fn tags(&self, repository: &ImageRepo) -> flux_core::Result<Vec<String>> {
        let start = std::time::Instant::now();
        let result = self.inner.tags(repository).await;
        self.metrics.registry_call(repository.registry(), "tags", result.is_ok(), start.elapsed());
        result
    }

    async fn image_info(&self, image: &ImageRef) -> flux_core::Result<ImageInfo> {
        let start = std::time::Instant::now();
        let result = self.inner.image_info(image).await;
        self.metrics.registry_call(image.repository().registry(), "image_info", result.is_ok(), start.elapsed());
        result
    }
}

/// The route `/metrics`, in Prometheus' text format.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(metrics: Metrics) -> axum::Router<S> {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }
        }),
    )
}

/// Serves `/metrics` on `addr` until shutdown.
pub(crate) async fn serve(
    metrics: Metrics,
    addr: std::net::SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app: axum::Router = router(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_v1_metrics_have_v1_names_types_and_labels() {
        let metrics = Metrics::new();
        metrics.git_ready("shop", true);
        metrics.job_queued("shop");
        metrics.job_started("shop", std::time::Duration::from_millis(30));
        metrics.job_finished("shop", std::time::Duration::from_millis(700), true);
        metrics.registry_call("registry.example", "tags", false, std::time::Duration::from_millis(3));
        // (A family shows once it has a sample: the sync ones are checked by the e2e test.)
        let text = metrics.render();
        for line in [
            "# TYPE flux_daemon_job_duration_seconds histogram",
            "# TYPE flux_daemon_queue_duration_seconds histogram",
            "# TYPE flux_daemon_queue_length_count gauge",
            "# TYPE flux_git_ready gauge",
            "# TYPE flux_registry_fetch_duration_seconds histogram",
            "flux_git_ready{unit=\"shop\"} 1",
            "flux_daemon_queue_length_count{unit=\"shop\"} 0",
            "flux_daemon_job_duration_seconds_count{unit=\"shop\",success=\"true\"} 1",
            "flux_daemon_job_duration_seconds_bucket{le=\"1.0\",unit=\"shop\",success=\"true\"} 1",
            "flux_daemon_queue_duration_seconds_count{unit=\"shop\"} 1",
            "flux_registry_fetch_duration_seconds_count{success=\"false\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
        metrics.git_ready("shop", false);
        assert!(metrics.render().lines().any(|l| l == "flux_git_ready{unit=\"shop\"} 0"));
    }
}
