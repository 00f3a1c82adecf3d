//! fluxd's command line: Flux v1's daemon flags, with the same names and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Which commits must be signed by a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyMode {
    /// No verification.
    None,
    /// The head commit.
    Head,
    /// Every commit since the sync marker.
    All,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Fmt,
    /// One JSON object per line.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

/// Splits comma-separated values of a repeatable flag.
pub(crate) fn split_list(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

/// The GitOps daemon: keeps a cluster in step with a git repository, and the repository in step
/// with container registries.
#[derive(Debug, Parser)]
#[command(name = "fluxd", version, about)]
pub(crate) struct Flags {
    /// The repository: any transport flux-git supports (ssh, https, git, file) or a local path.
    #[arg(long)]
    pub git_url: String,
    /// The branch to sync and commit to.
    #[arg(long, default_value = "main")]
    pub git_branch: String,
    /// Paths in the repository holding manifests (repeatable, comma-separated; default: root).
    #[arg(long)]
    pub git_path: Vec<String>,
    /// Never push: no commits, no sync marker.
    #[arg(long)]
    pub git_readonly: bool,
    /// The committer name of automation commits.
    #[arg(long, default_value = "Weave Flux")]
    pub git_user: String,
    /// The committer email of automation commits.
    #[arg(long, default_value = "support@weave.works")]
    pub git_email: String,
    /// Record the user asking for a release or policy change as the commit's author.
    #[arg(long, default_value_t = false)]
    pub git_set_author: bool,
    /// The tag marking the last revision synced.
    #[arg(long, default_value = "flux-sync")]
    pub git_sync_tag: String,
    /// Add `[ci skip]` to commit messages.
    #[arg(long)]
    pub git_ci_skip: bool,
    /// Sign commits with this GPG key id.
    #[arg(long)]
    pub git_signing_key: Option<String>,
    /// Verify commit signatures before syncing.
    #[arg(long, value_enum, default_value = "none")]
    pub git_verify_signatures_mode: VerifyMode,
    /// The ssh deploy key (private key file); `identity` shows its public half.
    #[arg(long, env = "FLUX_GIT_DEPLOY_KEY")]
    pub git_deploy_key: Option<PathBuf>,
    /// The known_hosts file ssh checks host keys against (default: the user's).
    #[arg(long)]
    pub git_known_hosts: Option<PathBuf>,
    /// How often the repository is fetched.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub git_poll_interval: Duration,
    /// How often the cluster is synced even when git did not change (drift is put back).
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub sync_interval: Duration,
    /// Delete objects this daemon applied that left git.
    #[arg(long)]
    pub sync_garbage_collection: bool,
    /// Report what garbage collection would delete, delete nothing.
    #[arg(long)]
    pub sync_garbage_collection_dry: bool,
    /// How often automated workloads are checked for new images.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub automation_interval: Duration,
    /// No automation and no image listing from registries.
    #[arg(long)]
    pub registry_disable_scanning: bool,
    /// Average requests per second to one registry host.
    #[arg(long, default_value_t = 200.0)]
    pub registry_rps: f64,
    /// Requests allowed at once above that rate.
    #[arg(long, default_value_t = 125)]
    pub registry_burst: u32,
    /// Registry hosts spoken to in plain HTTP (repeatable).
    #[arg(long)]
    pub registry_insecure_host: Vec<String>,
    /// Only scan image repositories matching these globs (comma-separated).
    #[arg(long)]
    pub registry_include_image: Vec<String>,
    /// Never scan image repositories matching these globs (comma-separated).
    #[arg(long)]
    pub registry_exclude_image: Vec<String>,
    /// Where registry answers are cached between runs.
    #[arg(long)]
    pub registry_cache_dir: Option<PathBuf>,
    /// Docker's config.json, for registry credentials.
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
    /// Only sync into these namespaces (repeatable).
    #[arg(long)]
    pub k8s_allow_namespace: Vec<String>,
    /// The namespace of namespaced objects that name none.
    #[arg(long)]
    pub k8s_default_namespace: Option<String>,
    /// Kinds never synced (`Kind` or `group/Kind`, comma-separated).
    #[arg(long)]
    pub k8s_unsafe_exclude_resource: Vec<String>,
    /// The kubeconfig file (else KUBECONFIG, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:3030")]
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served (none when unset).
    #[arg(long)]
    pub listen_metrics: Option<SocketAddr>,
    /// A file holding the API token (else env FLUX_API_TOKEN).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// A file holding the secret of GitHub push webhooks (HMAC-SHA256).
    #[arg(long)]
    pub webhook_github_secret_file: Option<PathBuf>,
    /// Send sync and release outcomes as JSON to this URL (repeatable).
    #[arg(long)]
    pub notify_webhook_url: Vec<String>,
    /// Send sync and release outcomes to this Slack-compatible incoming webhook.
    #[arg(long)]
    pub notify_slack_url: Option<String>,
    /// Generate manifests as `.flux.yaml` files say (Flux v1's `commandUpdated`,
    /// `patchUpdated`, `scanForFiles`), for each --git-path governed by one at or above it.
    #[arg(long)]
    pub manifest_generation: bool,
    /// How long one manifest generation command (a `.flux.yaml` generator or updater, a
    /// kustomize build) may run before it is killed and the revision counted unusable.
    #[arg(long, value_parser = duration, default_value = "1m")]
    pub sync_timeout: Duration,
    /// The program (and arguments) that builds Kustomize apps, the directory appended
    /// (default: `kustomize build` if `kustomize` is on the PATH, else `kubectl kustomize`).
    #[arg(long)]
    pub kustomize_command: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "fmt")]
    pub log_format: LogFormat,
    /// Fetch, sync, run one automation pass, sync again if it committed, print a report, exit
    /// (0 on success, 1 on any failure).
    #[arg(long)]
    pub once: bool,
    /// Plan only: print what sync and automation would change; write nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the local git mirror lives (default: a temporary directory).
    #[arg(long)]
    pub git_mirror_dir: Option<PathBuf>,
}

impl Flags {
    /// The manifest paths, split.
    pub(crate) fn paths(&self) -> Vec<String> {
        split_list(&self.git_path)
    }

    /// Checks combinations clap cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.sync_garbage_collection && self.sync_garbage_collection_dry {
            return Err("--sync-garbage-collection and --sync-garbage-collection-dry exclude each other".into());
        }
        for (name, d) in [
            ("--git-poll-interval", self.git_poll_interval),
            ("--sync-interval", self.sync_interval),
            ("--automation-interval", self.automation_interval),
            ("--sync-timeout", self.sync_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_v1_flags_parse_with_their_defaults() {
        let f = Flags::try_parse_from(["fluxd", "--git-url", "/repo"]).unwrap();
        assert_eq!(f.git_branch, "main");
        assert_eq!(f.git_sync_tag, "flux-sync");
        assert_eq!(f.git_poll_interval, Duration::from_secs(300));
        assert_eq!(f.listen.to_string(), "127.0.0.1:3030");
        assert!(f.paths().is_empty());
        let f = Flags::try_parse_from([
            "fluxd",
            "--git-url=/repo",
            "--git-path=a,b",
            "--git-path",
            "c",
            "--sync-interval=30s",
            "--git-verify-signatures-mode=head",
        ])
        .unwrap();
        assert_eq!(f.paths(), ["a", "b", "c"]);
        assert_eq!(f.sync_interval, Duration::from_secs(30));
        assert_eq!(f.git_verify_signatures_mode, VerifyMode::Head);
        assert!(Flags::try_parse_from(["fluxd", "--git-url=/r", "--sync-interval=soon"]).is_err());
        assert!(Flags::try_parse_from(["fluxd"]).is_err(), "--git-url is required");
    }

    #[test]
    fn manifest_generation_flags() {
        let f = Flags::try_parse_from(["fluxd", "--git-url=/r"]).unwrap();
        assert!(!f.manifest_generation);
        assert_eq!(f.sync_timeout, Duration::from_secs(60), "Flux v1's default");
        let f = Flags::try_parse_from([
            "fluxd",
            "--git-url=/r",
            "--manifest-generation",
            "--sync-timeout=90s",
            "--kustomize-command=kustomize build --enable-helm",
        ])
        .unwrap();
        assert!(f.validate().is_ok() && f.manifest_generation);
        assert_eq!(f.sync_timeout, Duration::from_secs(90));
        assert_eq!(f.kustomize_command.as_deref(), Some("kustomize build --enable-helm"));
        let zero = Flags::try_parse_from(["fluxd", "--git-url=/r", "--sync-timeout=0s"]).unwrap();
        assert!(zero.validate().unwrap_err().contains("--sync-timeout"));
    }
}
