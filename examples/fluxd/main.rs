//! `fluxd`, the reference GitOps daemon: flux-git, flux-registry and flux-k8s composed with
//! flux-core's sync and automation engines, Flux v1's flags, an authenticated HTTP API,
//! webhooks, notifications and Prometheus metrics.
//!
//! ```sh
//! FLUX_API_TOKEN=secret cargo run -p examples --example fluxd -- \
//!     --git-url git@github.com:org/fleet.git --git-path deploy --kubeconfig ~/.kube/config
//! ```
//!
//! `--once` runs one round and exits (for CI and cron); `--dry-run` prints what would change.
//! Flags, routes and examples: examples/README.md.

#[path = "../common/api.rs"]
mod api_types;

mod api;
mod auth;
mod daemon;
mod dry_run;
mod flags;
mod loops;
mod metrics;
mod notify;
mod once;
mod report;
mod webhooks;
mod wiring;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flux_core::jobs::JobQueue;
use tokio::sync::watch;

use crate::auth::{ApiToken, GithubSecret};
use crate::daemon::Daemon;
use crate::flags::{Flags, LogFormat};
use crate::metrics::Metrics;
use crate::notify::Notifier;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Fmt => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    init_logs(flags.log_format);
    match run(flags).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fluxd: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs what the flags ask; `Ok(false)` when a one-shot run found failures.
async fn run(flags: Flags) -> Result<bool, String> {
    flags.validate()?;
    let metrics = Metrics::new();
    let parts = wiring::build(&flags, &metrics).await.map_err(|e| e.to_string())?;
    let scanning = !flags.registry_disable_scanning;
    if flags.dry_run {
        return once::dry_run(&parts, scanning).await.map_err(|e| e.to_string());
    }
    if flags.once {
        return once::once(&parts, scanning).await.map_err(|e| e.to_string());
    }
    serve(flags, parts, metrics).await.map(|()| true)
}

/// The daemon proper: loops, API and metrics until SIGTERM or Ctrl-C.
async fn serve(flags: Flags, parts: wiring::Parts, metrics: Metrics) -> Result<(), String> {
    let token = ApiToken::load(flags.api_token_file.as_deref())?;
    let github = flags.webhook_github_secret_file.as_deref().map(GithubSecret::load).transpose()?;
    let notifier = Notifier::new(flags.notify_webhook_url.clone(), flags.notify_slack_url.clone());
    let (jobs, worker) = JobQueue::new(100);
    let daemon = Arc::new(Daemon::new(
        parts,
        jobs,
        metrics.clone(),
        notifier,
        flags.git_branch.clone(),
        flags.git_set_author,
        flags.registry_disable_scanning,
    ));
    let (stop, stopped) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(flags.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", flags.listen))?;
    tracing::info!(listen = %flags.listen, "API listening");
    let mut tasks = tokio::task::JoinSet::new();
    let mut rx = stopped.clone();
    // The worker finishes the job it is running (never a half-pushed commit) and stops.
    tasks.spawn(worker.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    tasks.spawn(loops::watch_syncs(daemon.clone(), stopped.clone()));
    tasks.spawn(loops::git_poll(daemon.clone(), flags.git_poll_interval, stopped.clone()));
    tasks.spawn(loops::sync(daemon.clone(), flags.sync_interval, stopped.clone()));
    if !flags.registry_disable_scanning {
        tasks.spawn(loops::automation(daemon.clone(), flags.automation_interval, stopped.clone()));
    }
    if let Some(addr) = flags.listen_metrics {
        let stopped = stopped.clone();
        tasks.spawn(async move {
            if let Err(e) = metrics::serve(metrics, addr, stopped).await {
                tracing::error!(error = %e, %addr, "metrics server failed");
            }
        });
    }
    let app = api::router(daemon, token, github);
    let mut rx = stopped.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API server failed");
        }
    });

    shutdown_signal().await;
    tracing::info!("shutting down: finishing the current job");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
