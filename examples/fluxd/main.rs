//! `fluxd`, the reference GitOps daemon: flux-git, flux-registry and flux-k8s adapters under
//! flux-daemon's units and daemon (loops, job queues, the HTTP API, event sinks, metrics). This
//! program only reads Flux v1's flags (one unit) or `--config FILE` (several) into the builder.
//!
//! ```sh
//! FLUX_API_TOKEN=secret cargo run -p examples --example fluxd -- \
//!     --git-url git@github.com:org/fleet.git --git-path deploy --kubeconfig ~/.kube/config
//! ```
//!
//! `--once` runs one round and exits (for CI and cron); `--dry-run` prints what would change.
//! Flags, routes and examples: examples/README.md.

mod config;
mod deploy_key;
mod flags;
mod ha;
mod once;
mod pull_secrets;
mod report;
mod sync_state;
mod wiring;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flux_daemon::sinks::{SlackSink, WebhookSink};
use flux_daemon::{ApiAuth, ApiSettings, ApiToken, Daemon, EventSink, GithubSecret, Metrics};

use crate::flags::{Flags, LogFormat};
use crate::wiring::UnitRequest;

/// The name of the unit the flags describe (flux-api's `?unit=`).
pub(crate) const DEFAULT_UNIT: &str = "default";

/// Logs as `RUST_LOG` says (default `info`), with flux-registry's requests at trace level for
/// --registry-trace and the Kubernetes client's at debug (trace from 6) for --k8s-verbosity.
fn init_logs(flags: &Flags) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let mut directives = Vec::new();
    if flags.registry_trace {
        directives.push("flux_registry=trace");
    }
    match flags.k8s_verbosity {
        0 => {}
        1..=5 => directives.extend(["kube=debug", "kube_client=debug"]),
        _ => directives.extend(["kube=trace", "kube_client=trace"]),
    }
    for directive in directives {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let format = flags.log_format;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Fmt => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (flags, requests) = match read_flags() {
        Ok(read) => read,
        Err(e) => {
            eprintln!("fluxd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(&flags);
    for (flag, why) in flags.ignored.given() {
        tracing::warn!(flag, reason = why, "Flux v1 flag ignored");
    }
    match run(flags, requests).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fluxd: {e}");
            ExitCode::from(2)
        }
    }
}

/// The flags and the units: the one unit of the flags, or those of `--config` (whose top-level
/// keys come before the command line's flags, so flags win).
fn read_flags() -> Result<(Flags, Vec<UnitRequest>), String> {
    let flags = Flags::parse();
    check_required_registries(&flags)?;
    let Some(path) = flags.config.clone() else {
        flags.unit.validate()?;
        let unit = flags.unit.clone();
        return Ok((flags, vec![UnitRequest { name: None, flags: unit }]));
    };
    if flags.unit.git_url.is_some() {
        return Err("--git-url and --config exclude each other: per-unit settings go in the file".into());
    }
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let parsed = config::parse(&file, &text)?;
    let mut args: Vec<std::ffi::OsString> = vec!["fluxd".into()];
    args.extend(parsed.daemon_args.iter().map(Into::into));
    args.extend(std::env::args_os().skip(1));
    let flags = Flags::try_parse_from(args).map_err(|e| format!("{file}: {}", e.render().to_string().trim()))?;
    let requests = parsed
        .units
        .iter()
        .map(|entry| Ok(UnitRequest { name: Some(entry.name.clone()), flags: config::unit_flags(&file, entry)? }))
        .collect::<Result<Vec<_>, String>>()?;
    Ok((flags, requests))
}

/// Flux v1's `--registry-require`: `ecr` is its only value, and flux-rs cannot authenticate with
/// ECR by itself, so asking for it stops fluxd as v1 stopped when ECR was not available.
fn check_required_registries(flags: &Flags) -> Result<(), String> {
    let required = flags::split_list(&flags.registry_require);
    if let Some(other) = required.iter().find(|r| *r != "ecr") {
        return Err(format!("--registry-require value {other:?} is not in possible values {{ecr}}"));
    }
    if !required.is_empty() {
        return Err("--registry-require=ecr: flux-rs has no ECR automatic authentication; give ECR \
                    credentials with --docker-config (a credential helper) or image pull secrets"
            .into());
    }
    Ok(())
}

/// Runs what the flags ask; the exit code: 1 when a `--once` run found failures; for
/// `--dry-run`, `kubectl diff`'s (0 no changes, 1 changes, 2 failures).
async fn run(flags: Flags, requests: Vec<UnitRequest>) -> Result<u8, String> {
    let metrics = Metrics::new();
    let built = wiring::build(&flags, requests, &metrics).await.map_err(|e| e.to_string())?;
    if flags.dry_run || flags.once {
        let mut code = 0;
        // Each unit after those it depends on; a unit whose dependency failed is held.
        let graph: Vec<(&str, &[String])> = built.units.iter().map(|u| (u.name(), u.depends_on())).collect();
        let order = flux_daemon::dependency_order(&graph).map_err(|e| e.to_string())?;
        let mut failed: Vec<&str> = Vec::new();
        for name in order {
            let Some(unit) = built.units.iter().find(|u| u.name() == name) else { continue };
            if built.units.len() > 1 {
                println!("unit {}:", unit.name());
            }
            let held = unit.depends_on().iter().find(|d| failed.contains(&d.as_str()));
            if let (Some(by), false) = (held, flags.dry_run) {
                println!("held by {by}: {by} did not sync (healthy); nothing applied");
                failed.push(name);
                code = code.max(1);
                continue;
            }
            let done = if flags.dry_run {
                once::dry_run(unit, flags.dry_run_format).await
            } else {
                once::once(unit).await.map(|ok| u8::from(!ok))
            };
            let done = done.map_err(|e| format!("unit {}: {e}", unit.name()))?;
            if done != 0 {
                failed.push(name);
            }
            code = code.max(done);
        }
        return Ok(code);
    }
    serve(flags, built, metrics).await.map(|()| 0)
}

/// The daemon proper: units, API and metrics until SIGTERM or Ctrl-C.
async fn serve(flags: Flags, built: wiring::Built, metrics: Metrics) -> Result<(), String> {
    let token = match ApiToken::load(flags.api_token_file.as_deref()) {
        Ok(token) => Some(token),
        // Without a token only loopback clients get in, and only when opted in.
        Err(e) if flags.api_allow_unauthenticated_loopback && flags.api_token_file.is_none() => {
            tracing::warn!(reason = %e, "no API token: only loopback clients may use the API");
            None
        }
        Err(e) => return Err(e),
    };
    if flags.api_allow_unauthenticated_loopback {
        tracing::warn!("--api-allow-unauthenticated-loopback: requests from 127.0.0.1 and ::1 need no token");
    }
    let auth = ApiAuth { token, allow_unauthenticated_loopback: flags.api_allow_unauthenticated_loopback };
    let github_secret = flags.webhook_github_secret_file.as_deref().map(GithubSecret::load).transpose()?;
    let mut builder = Daemon::builder()
        .metrics(metrics.clone(), flags.listen_metrics)
        .api(ApiSettings { listen: flags.listen, auth, github_secret })
        .state_dir(&built.state_dir);
    for url in &flags.notify_webhook_url {
        builder =
            builder.sink(Arc::new(WebhookSink::new(url.clone()).map_err(|e| e.to_string())?) as Arc<dyn EventSink>);
    }
    if let Some(url) = &flags.notify_slack_url {
        builder = builder.sink(Arc::new(SlackSink::new(url.clone()).map_err(|e| e.to_string())?));
    }
    for unit in built.units {
        builder = builder.unit(unit);
    }
    let daemon = Arc::new(builder.build().map_err(|e| e.to_string())?);
    let oci = built.oci.clone();
    let counting = metrics.clone();
    // The registry adapter's request count, for the cache-effect metric.
    let counter = tokio::spawn(async move {
        loop {
            counting.registry_http_requests(oci.request_count());
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    let result = daemon.run(shutdown_signal()).await.map_err(|e| e.to_string());
    counter.abort();
    drop(built.temp);
    result
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
