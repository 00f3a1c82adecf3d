//! fluxd's command line: every flag of Flux v1's `fluxd` (fluxcd/flux `cmd/fluxd/main.go`) with
//! its name, short form, default and meaning, and flux-rs's own. Booleans take `--flag`,
//! `--flag=true` and `--flag=false` (pflag's forms); addresses take `:PORT` (all interfaces).
//! The flags of what flux-rs does differently on purpose are accepted and ignored
//! ([`IgnoredFlags`]: logged once at start with the reason).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// Which commits must be signed by a trusted key (Flux v1's `--git-verify-signatures-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyMode {
    /// No verification.
    None,
    /// Every commit between the sync marker and the head, on every path (v1's `all`).
    All,
    /// The commits of the first-parent chain from the sync marker to the head (v1's
    /// `first-parent`).
    FirstParent,
    /// The head commit only (flux-rs's).
    Head,
}

/// Where the sync marker is kept (Flux v1's `--sync-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SyncState {
    /// A git tag (`--git-sync-tag`, or `--git-label`).
    Git,
    /// The annotation `flux.weave.works/sync-hwm` of the deploy-key Secret (`--k8s-secret-name`).
    Secret,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Fmt,
    /// One JSON object per line.
    Json,
}

/// A boolean as Go's `strconv.ParseBool` (pflag's) reads it: `1`, `t`, `T`, `TRUE`, `true`,
/// `True`, `0`, `f`, `F`, `FALSE`, `false`, `False`.
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{s}: not a boolean (true or false)")),
    }
}

/// `--sync-prune-guard`: a share of the unit's objects in percent, `None` for no guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PruneGuardFlag(pub(crate) Option<u8>);

/// `50%`, `50` (1 to 100); `0`, `off` or `false`: no guard.
fn prune_guard(s: &str) -> Result<PruneGuardFlag, String> {
    let text = s.trim();
    // `off` in a YAML config file reads as the boolean false.
    if text.eq_ignore_ascii_case("off") || text == "false" {
        return Ok(PruneGuardFlag(None));
    }
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<u8>() {
        Ok(0) => Ok(PruneGuardFlag(None)),
        Ok(percent @ 1..=100) => Ok(PruneGuardFlag(Some(percent))),
        _ => Err(format!("{s}: a share of the unit's objects from 1% to 100%, or 0 or off (no guard)")),
    }
}

/// How `--dry-run` prints its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DryRunFormat {
    /// Plain text, for a terminal or a log.
    Text,
    /// Markdown, for a pull-request comment.
    Markdown,
}

/// A health check: `API_VERSION:NAMESPACE:KIND/NAME` (`<cluster>` for cluster-scoped
/// objects), e.g. `apps/v1:db:deployment/postgres`.
pub(crate) fn health_check(s: &str) -> Result<flux_core::ObjectRef, String> {
    let bad = |why: String| {
        format!("{s}: {why} (expected API_VERSION:NAMESPACE:KIND/NAME, e.g. apps/v1:db:deployment/postgres)")
    };
    let (api_version, id) = s.trim().split_once(':').ok_or_else(|| bad("no apiVersion".into()))?;
    if api_version.is_empty() || api_version.starts_with('/') || api_version.ends_with('/') {
        return Err(bad("no apiVersion".into()));
    }
    let id = id.parse().map_err(|e: flux_core::Error| bad(e.to_string()))?;
    Ok(flux_core::ObjectRef { api_version: api_version.to_owned(), id })
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

/// A listen address: `HOST:PORT`, `IP:PORT`, `[IPv6]:PORT`, or Go's `:PORT` (every interface).
pub(crate) fn address(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| format!("{s}: not a port (examples: :3030, 127.0.0.1:3030)"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s}: {e} (examples: :3030, 127.0.0.1:3030)"))?
        .next()
        .ok_or_else(|| format!("{s}: the host has no address"))
}

/// Splits comma-separated values of a repeatable flag.
pub(crate) fn split_list(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

/// The daemon: keeps a cluster in step with git repositories, and the repositories in step with
/// container registries. Flux v1's flags describe one unit; `--config FILE` declares several.
#[derive(Debug, Parser)]
#[command(name = "fluxd", version = flux_daemon::VERSION, about)]
pub(crate) struct Flags {
    /// The one unit of Flux v1's form (flags), when there is no --config.
    #[command(flatten)]
    pub unit: UnitFlags,
    /// Flux v1's flags that flux-rs accepts and ignores.
    #[command(flatten)]
    pub ignored: IgnoredFlags,
    /// Average requests per second to one registry host.
    #[arg(long, default_value_t = 50.0)]
    pub registry_rps: f64,
    /// Requests allowed at once above that rate.
    #[arg(long, default_value_t = 10)]
    pub registry_burst: u32,
    /// Log every registry request (Flux v1's trace of image registry requests).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub registry_trace: bool,
    /// Registry hosts spoken to in plain HTTP (repeatable).
    #[arg(long)]
    pub registry_insecure_host: Vec<String>,
    /// Use the timestamp (RFC3339) from labels for (canonical) image refs that match these glob
    /// expression (Flux v1's): `org.opencontainers.image.created`, else
    /// `org.label-schema.build-date`, instead of the config's `created` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "index.docker.io/weaveworks/*,index.docker.io/fluxcd/*")]
    pub registry_use_labels: Vec<String>,
    /// Exit with an error if automatic authentication with these registries is not possible
    /// (Flux v1: `ecr`; flux-rs has no ECR automatic authentication, so `ecr` fails at start).
    #[arg(long)]
    pub registry_require: Vec<String>,
    /// Where registry answers are cached between runs.
    #[arg(long)]
    pub registry_cache_dir: Option<PathBuf>,
    /// Docker's config.json, for registry credentials.
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
    /// The kubeconfig file (else KUBECONFIG, else in-cluster). Flux v1's deprecated
    /// `--kube-config` is the same.
    #[arg(long, visible_alias = "kube-config")]
    pub kubeconfig: Option<PathBuf>,
    /// The Kubernetes client's log verbosity (Flux v1's klog level): above 0, `kube` logs at
    /// debug level; 6 and above, at trace level.
    #[arg(long, default_value_t = 0)]
    pub k8s_verbosity: u8,
    /// Where the API server's discovery documents are cached across restarts, as kubectl's
    /// `~/.kube/cache/discovery` (6 hours; an unknown kind refreshes at once). Default: none,
    /// discovery at each start.
    #[arg(long)]
    pub k8s_discovery_cache_dir: Option<PathBuf>,
    /// Where the API (and /metrics) listens: `:PORT` is every interface.
    #[arg(short = 'l', long, value_parser = address, default_value = ":3030")]
    pub listen: SocketAddr,
    /// Where Prometheus metrics are also served (besides /metrics on --listen).
    #[arg(long, value_parser = address)]
    pub listen_metrics: Option<SocketAddr>,
    /// A file holding the API token (else env FLUX_API_TOKEN).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Let requests from the loopback interface (127.0.0.1, ::1; `kubectl port-forward`,
    /// fluxctl's default) use the API without a token; every other request still needs it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub api_allow_unauthenticated_loopback: bool,
    /// A file holding the secret of GitHub push webhooks (HMAC-SHA256).
    #[arg(long)]
    pub webhook_github_secret_file: Option<PathBuf>,
    /// Send sync and release outcomes as JSON to this URL (repeatable).
    #[arg(long)]
    pub notify_webhook_url: Vec<String>,
    /// Send sync and release outcomes to this Slack-compatible incoming webhook.
    #[arg(long)]
    pub notify_slack_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "fmt")]
    pub log_format: LogFormat,
    /// Fetch, sync, run one automation pass, sync again if it committed, print a report, exit
    /// (0 on success, 1 on any failure).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub once: bool,
    /// Plan only: print what sync and automation would change, each object's changed fields
    /// from a server-side dry run, and the prune list; write nothing anywhere. Exit 0 when
    /// nothing would change, 1 when something would (as `kubectl diff`), 2 on failures.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub dry_run: bool,
    /// How --dry-run prints its plan: `text`, or `markdown` (for a pull-request comment).
    #[arg(long, value_enum, default_value = "text")]
    pub dry_run_format: DryRunFormat,
    /// With --dry-run: plan the head of this branch (a pull request's) instead of
    /// --git-branch's, under the units' own identities (those of --git-branch), so the plan is
    /// what merging it would do to the cluster.
    #[arg(long, value_name = "BRANCH")]
    pub dry_run_branch: Option<String>,
    /// Where the local git mirror lives (default: a temporary directory).
    #[arg(long)]
    pub git_mirror_dir: Option<PathBuf>,
    /// A YAML file declaring the units (`units:`, each keyed by the per-unit flags without their
    /// dashes) and daemon-wide settings (the other flags, as top-level keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where each unit's job journal is kept (recent jobs' results, answered after a restart;
    /// default: `fluxd-state` next to --git-mirror-dir, else a temporary directory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// High availability: replicas share the units, one writer per unit, through
    /// `coordination.k8s.io` Leases in this namespace. Off without it.
    #[arg(long, value_name = "NS")]
    pub ha_namespace: Option<String>,
    /// This replica's id among the replicas (default: env POD_NAME, else the host name).
    #[arg(long, value_name = "ID")]
    pub ha_replica_id: Option<String>,
    /// How long a replica's Leases last unrenewed: a replica that dies loses its units after it.
    #[arg(long, value_parser = duration, default_value = "15s")]
    pub ha_lease_duration: Duration,
    /// The API address the other replicas forward writes for this replica's units to
    /// (`HOST:PORT` or an `http(s)://` URL; default: `$POD_IP` with --listen's port, else
    /// --listen unless it is every interface).
    #[arg(long, value_name = "ADDRESS")]
    pub ha_advertise_address: Option<String>,
}

/// Flux v1's flags for what flux-rs does differently on purpose: accepted (with any value) and
/// ignored, each logged once at start with the reason ([`IgnoredFlags::given`]).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct IgnoredFlags {
    /// Ignored: flux-rs's registry cache is on disk (--registry-cache-dir), not memcached.
    /// (v1: `memcached`)
    #[arg(long, value_name = "HOST")]
    pub memcached_hostname: Option<String>,
    /// Ignored: no memcached (v1: 11211).
    #[arg(long, value_name = "PORT")]
    pub memcached_port: Option<String>,
    /// Ignored: no memcached (v1: 1s).
    #[arg(long, value_name = "DURATION")]
    pub memcached_timeout: Option<String>,
    /// Ignored: no memcached (v1: `memcached`).
    #[arg(long, value_name = "SERVICE")]
    pub memcached_service: Option<String>,
    /// Ignored: cache entries are refreshed adaptively (deprecated in v1 too).
    #[arg(long, value_name = "DURATION")]
    pub registry_cache_expiry: Option<String>,
    /// Ignored: flux-rs applies through the API server, not kubectl.
    #[arg(long, value_name = "PATH")]
    pub kubernetes_kubectl: Option<String>,
    /// Ignored: in-cluster is detected (deprecated in v1 too; v1: true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub k8s_in_cluster: Option<String>,
    /// Ignored: no upstream service (Weave Cloud is gone); the API is served on --listen.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
    /// Ignored: the token of the upstream service (--connect).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Ignored: the timeout of upstream requests (--connect; v1: 10s).
    #[arg(long, value_name = "DURATION")]
    pub rpc_timeout: Option<String>,
    /// Ignored: flux-rs has no ECR automatic authentication (use --docker-config or pull
    /// secrets).
    #[arg(long, value_name = "REGION")]
    pub registry_ecr_region: Vec<String>,
    /// Ignored: no ECR automatic authentication.
    #[arg(long, value_name = "ID")]
    pub registry_ecr_include_id: Vec<String>,
    /// Ignored: no ECR automatic authentication (v1: 602401143452).
    #[arg(long, value_name = "ID")]
    pub registry_ecr_exclude_id: Vec<String>,
}

impl IgnoredFlags {
    /// The ignored flags given, each with why flux-rs ignores it.
    pub(crate) fn given(&self) -> Vec<(&'static str, &'static str)> {
        const MEMCACHED: &str = "flux-rs's registry cache is on disk (--registry-cache-dir), not in memcached";
        const UPSTREAM: &str = "flux-rs has no upstream service (Weave Cloud); the API is served on --listen";
        const ECR: &str = "flux-rs has no ECR automatic authentication; give credentials with --docker-config or \
                           image pull secrets";
        let mut given = Vec::new();
        let mut check = |set: bool, name, why| {
            if set {
                given.push((name, why));
            }
        };
        check(self.memcached_hostname.is_some(), "--memcached-hostname", MEMCACHED);
        check(self.memcached_port.is_some(), "--memcached-port", MEMCACHED);
        check(self.memcached_timeout.is_some(), "--memcached-timeout", MEMCACHED);
        check(self.memcached_service.is_some(), "--memcached-service", MEMCACHED);
        check(
            self.registry_cache_expiry.is_some(),
            "--registry-cache-expiry",
            "deprecated in Flux v1; entries are refreshed as often as their tags change",
        );
        check(
            self.kubernetes_kubectl.is_some(),
            "--kubernetes-kubectl",
            "flux-rs applies through the API server (server-side apply), not kubectl",
        );
        check(
            self.k8s_in_cluster.is_some(),
            "--k8s-in-cluster",
            "deprecated in Flux v1; running in a cluster is detected",
        );
        check(self.connect.is_some(), "--connect", UPSTREAM);
        check(self.token.is_some(), "--token", UPSTREAM);
        check(self.rpc_timeout.is_some(), "--rpc-timeout", UPSTREAM);
        check(!self.registry_ecr_region.is_empty(), "--registry-ecr-region", ECR);
        check(!self.registry_ecr_include_id.is_empty(), "--registry-ecr-include-id", ECR);
        check(!self.registry_ecr_exclude_id.is_empty(), "--registry-ecr-exclude-id", ECR);
        given
    }
}

/// The flags of one unit: on the command line for the one-unit form, or the keys (without
/// dashes) of one entry of `units:` in --config.
#[derive(Debug, Clone, Args)]
pub(crate) struct UnitFlags {
    /// The repository: any transport flux-git supports (ssh, https, git, file) or a local path.
    #[arg(long)]
    pub git_url: Option<String>,
    /// The branch to sync and commit to.
    #[arg(long, default_value = "master")]
    pub git_branch: String,
    /// Paths in the repository holding manifests (repeatable, comma-separated; default: root).
    #[arg(long)]
    pub git_path: Vec<String>,
    /// Never push: no commits; the sync marker is kept in the deploy-key Secret
    /// (--sync-state=secret), as Flux v1.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub git_readonly: bool,
    /// The committer name of automation commits.
    #[arg(long, default_value = "Weave Flux")]
    pub git_user: String,
    /// The committer email of automation commits.
    #[arg(long, default_value = "support@weave.works")]
    pub git_email: String,
    /// Record the user asking for a release or policy change as the commit's author.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub git_set_author: bool,
    /// The label keeping track of sync progress: overrides --git-sync-tag and --git-notes-ref.
    #[arg(long)]
    pub git_label: Option<String>,
    /// The tag marking the last revision synced (with --sync-state=git).
    #[arg(long, default_value = "flux-sync")]
    pub git_sync_tag: String,
    /// Add `[ci skip]` to commit messages.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub git_ci_skip: bool,
    /// Sign commits with this GPG key id.
    #[arg(long)]
    pub git_signing_key: Option<String>,
    /// Keys at the paths given (files, or directories of key files) will be imported for use of
    /// signing and verifying commits (Flux v1's); into a private GNUPGHOME of this unit, never
    /// the user's keyring (repeatable, comma-separated).
    #[arg(long)]
    pub git_gpg_key_import: Vec<PathBuf>,
    /// Ref to use for keeping commit annotations in git notes (`refs/notes/<ref>`): every commit
    /// fluxd makes gets a note naming its job (Flux v1's).
    #[arg(long, default_value = "flux")]
    pub git_notes_ref: String,
    /// Additional text for commit messages, useful for skipping builds in CI. Use this to supply
    /// specific text, or set --git-ci-skip (Flux v1's).
    #[arg(long, default_value = "")]
    pub git_ci_skip_message: String,
    /// Deprecated in Flux v1: `--git-verify-signatures-mode=all` unless that flag is given.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub git_verify_signatures: bool,
    /// Which commits must be signed by a trusted key before a revision is synced.
    #[arg(long, value_enum)]
    pub git_verify_signatures_mode: Option<VerifyMode>,
    /// The ssh deploy key (private key file); `identity` shows its public half. Without it, the
    /// key of the deploy-key Secret (--k8s-secret-name) when there is one.
    #[arg(long, env = "FLUX_GIT_DEPLOY_KEY")]
    pub git_deploy_key: Option<PathBuf>,
    /// The known_hosts file ssh checks host keys against (default: the user's).
    #[arg(long)]
    pub git_known_hosts: Option<PathBuf>,
    /// How often the repository is fetched.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub git_poll_interval: Duration,
    /// How long one git network operation (fetch, push, listing the remote's refs, ssh's
    /// connection) may take before it fails (Flux v1's `--git-timeout`).
    #[arg(long, value_parser = duration, default_value = "20s")]
    pub git_timeout: Duration,
    /// How often the cluster is synced even when git did not change (drift is put back).
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub sync_interval: Duration,
    /// Delete objects this daemon applied that left git.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub sync_garbage_collection: bool,
    /// Report what garbage collection would delete, delete nothing (implies
    /// --sync-garbage-collection, as a dry run).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub sync_garbage_collection_dry: bool,
    /// Also garbage-collect objects of paths removed from `--git-path` (default: orphaned).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub sync_garbage_collection_removed_paths: bool,
    /// Hold a garbage collection that would delete more than this share of the unit's objects
    /// (and at least 10) until allowed once (`fluxctl sync --allow-prune`): `50%` or `50`;
    /// `0` or `off`: no guard.
    #[arg(long, value_parser = prune_guard, default_value = "50%")]
    pub sync_prune_guard: PruneGuardFlag,
    /// Where the sync marker is kept: a git tag, or (for read-only repositories) an annotation
    /// of the deploy-key Secret. --git-readonly forces `secret`.
    #[arg(long, value_enum, default_value = "git")]
    pub sync_state: SyncState,
    /// How often automated workloads are checked for new images.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub automation_interval: Duration,
    /// Period at which to check for updated images. Deprecated in Flux v1 ("Changed to
    /// --automation-interval, use that instead"): as v1, it sets --automation-interval when
    /// that is left at its default.
    #[arg(long, value_parser = duration)]
    pub registry_poll_interval: Option<Duration>,
    /// No automation and no image listing from registries.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub registry_disable_scanning: bool,
    /// Only scan image repositories matching these globs (comma-separated).
    #[arg(long)]
    pub registry_include_image: Vec<String>,
    /// Never scan image repositories matching these globs (comma-separated).
    #[arg(long, default_value = "k8s.gcr.io/*")]
    pub registry_exclude_image: Vec<String>,
    /// Only sync into these namespaces (repeatable). Cluster-scoped objects are still synced,
    /// except Namespaces not listed (Flux v1's rule).
    #[arg(long)]
    pub k8s_allow_namespace: Vec<String>,
    /// Deprecated in Flux v1: the same as --k8s-allow-namespace.
    #[arg(long)]
    pub k8s_namespace_whitelist: Vec<String>,
    /// The namespace of namespaced objects that name none.
    #[arg(long)]
    pub k8s_default_namespace: Option<String>,
    /// Resources never synced: Flux v1's `group/version/kind` globs (`apps/v1/Deployment`,
    /// `v1/Event`, `*metrics.k8s.io/*`), or `Kind`, or `group/Kind` (comma-separated).
    #[arg(long, default_value = "*metrics.k8s.io/*,webhook.certmanager.k8s.io/*,v1/Event")]
    pub k8s_unsafe_exclude_resource: Vec<String>,
    /// The Secret holding the deploy key (data key --k8s-secret-data-key), in fluxd's namespace.
    #[arg(long, default_value = "flux-git-deploy")]
    pub k8s_secret_name: String,
    /// Where that Secret is mounted (default `/etc/fluxd/ssh`).
    #[arg(long)]
    pub k8s_secret_volume_mount_path: Option<PathBuf>,
    /// The data key of the private key in that Secret.
    #[arg(long, default_value = "identity")]
    pub k8s_secret_data_key: String,
    /// Where keys are generated and the deploy key in use is kept (ideally a tmpfs; default: a
    /// directory next to the git mirror).
    #[arg(long)]
    pub ssh_keygen_dir: Option<PathBuf>,
    /// ssh-keygen's -t for generated keys (flux-rs: ed25519 unless given; v1: ssh-keygen's).
    #[arg(long, value_parser = ["rsa", "dsa", "ecdsa", "ecdsa-sk", "ed25519", "ed25519-sk"])]
    pub ssh_keygen_type: Option<String>,
    /// ssh-keygen's -b for generated keys.
    #[arg(long)]
    pub ssh_keygen_bits: Option<u32>,
    /// ssh-keygen's -m for generated keys (`RFC4716`, `PKCS8`, `PEM`).
    #[arg(long, value_parser = ["RFC4716", "PKCS8", "PEM"])]
    pub ssh_keygen_format: Option<String>,
    /// Generate manifests as `.flux.yaml` files say (Flux v1's `commandUpdated`,
    /// `patchUpdated`, `scanForFiles`), for each --git-path governed by one at or above it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub manifest_generation: bool,
    /// How long one manifest generation command (a `.flux.yaml` generator or updater, a
    /// kustomize build) may run before it is killed and the revision counted unusable.
    #[arg(long, value_parser = duration, default_value = "1m")]
    pub sync_timeout: Duration,
    /// The program (and arguments) that builds Kustomize apps, the directory appended
    /// (default: `kustomize build` if `kustomize` is on the PATH, else `kubectl kustomize`).
    #[arg(long)]
    pub kustomize_command: Option<String>,
    /// Decrypt SOPS-encrypted manifest files before syncing them (Flux v1's `--sops`): age
    /// keys natively, from `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE` or `~/.config/sops/age/keys.txt`
    /// as sops reads them; other key kinds through the `sops` program. Kustomize apps and
    /// `.flux.yaml` output are not decrypted.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub sops: bool,
    /// Run `git secret reveal -f` on every revision (Flux v1's `--git-secret`) and read the
    /// revealed files as manifests; the GPG key must be imported with --git-gpg-key-import or
    /// be in a mounted keyring (`GNUPGHOME`, else `~/.gnupg`). Needs the `git-secret` program.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub git_secret: bool,
    /// After each sync, wait until every object of the revision is healthy (kstatus rules:
    /// rolled out, complete, established, bound, Ready), at most --timeout; an object not
    /// healthy by then fails the sync, naming it (config key `wait`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, value_parser = boolean, default_value_t = false)]
    pub wait: bool,
    /// How long --wait waits for health (config key `timeout`).
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub timeout: Duration,
    /// Units (of the --config file) that must have synced their current revisions, healthy
    /// when they wait, before this one is applied (repeatable, comma-separated; config key
    /// `depends-on: [unit, ...]`).
    #[arg(long)]
    pub depends_on: Vec<String>,
    /// Objects (not necessarily this unit's) that must be healthy after each sync, within
    /// --timeout, as Flux v2's healthChecks: `API_VERSION:NAMESPACE:KIND/NAME`, e.g.
    /// `apps/v1:db:deployment/postgres` (repeatable; config key `health-check: [...]`).
    #[arg(long, value_parser = health_check)]
    pub health_check: Vec<flux_core::ObjectRef>,
}

impl UnitFlags {
    /// The manifest paths, split.
    pub(crate) fn paths(&self) -> Vec<String> {
        split_list(&self.git_path)
    }

    /// The repository.
    pub(crate) fn url(&self) -> Result<&str, String> {
        self.git_url.as_deref().ok_or_else(|| "--git-url is required (or --config FILE)".to_owned())
    }

    /// The sync tag: --git-label when given, else --git-sync-tag (Flux v1's rule).
    pub(crate) fn sync_tag(&self) -> &str {
        self.git_label.as_deref().unwrap_or(&self.git_sync_tag)
    }

    /// The verification mode: --git-verify-signatures-mode, else `all` with the deprecated
    /// --git-verify-signatures, else `none` (Flux v1's rule).
    pub(crate) fn verify_mode(&self) -> VerifyMode {
        match self.git_verify_signatures_mode {
            Some(mode) => mode,
            None if self.git_verify_signatures => VerifyMode::All,
            None => VerifyMode::None,
        }
    }

    /// Where the marker is kept: --git-readonly forces the Secret, as in Flux v1.
    pub(crate) fn sync_state(&self) -> SyncState {
        if self.git_readonly { SyncState::Secret } else { self.sync_state }
    }

    /// The namespaces of --k8s-allow-namespace and the deprecated --k8s-namespace-whitelist.
    pub(crate) fn allowed_namespaces(&self) -> Vec<String> {
        let mut all = split_list(&self.k8s_allow_namespace);
        all.extend(split_list(&self.k8s_namespace_whitelist));
        all.sort();
        all.dedup();
        all
    }

    /// Where the deploy-key Secret is mounted.
    pub(crate) fn secret_mount_path(&self) -> PathBuf {
        self.k8s_secret_volume_mount_path.clone().unwrap_or_else(|| PathBuf::from("/etc/fluxd/ssh"))
    }

    /// Checks combinations clap cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.url()?;
        for path in &self.git_path {
            if path.starts_with('/') {
                return Err(format!("--git-path {path}: a path in the repository, without a leading '/'"));
            }
        }
        for (name, d) in [
            ("--git-poll-interval", self.git_poll_interval),
            ("--git-timeout", self.git_timeout),
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

    fn parse(args: &[&str]) -> Flags {
        let mut all = vec!["fluxd"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn flux_v1_flags_parse_with_their_defaults() {
        let f = parse(&["--git-url", "/repo"]);
        assert_eq!(f.unit.git_branch, "master", "Flux v1's default");
        assert_eq!(f.unit.sync_tag(), "flux-sync");
        assert_eq!(f.unit.git_poll_interval, Duration::from_secs(300));
        assert_eq!(f.unit.git_timeout, Duration::from_secs(20), "Flux v1's default");
        assert_eq!(f.listen, "0.0.0.0:3030".parse().unwrap(), "v1's :3030, every interface");
        assert_eq!(split_list(&f.unit.registry_exclude_image), ["k8s.gcr.io/*"]);
        assert_eq!(
            split_list(&f.unit.k8s_unsafe_exclude_resource),
            ["*metrics.k8s.io/*", "webhook.certmanager.k8s.io/*", "v1/Event"]
        );
        assert_eq!((f.registry_rps, f.registry_burst), (50.0, 10));
        assert_eq!(f.unit.k8s_secret_name, "flux-git-deploy");
        assert_eq!(f.unit.secret_mount_path(), PathBuf::from("/etc/fluxd/ssh"));
        assert_eq!(f.unit.k8s_secret_data_key, "identity");
        assert_eq!(f.unit.verify_mode(), VerifyMode::None);
        assert_eq!(f.unit.sync_state(), SyncState::Git);
        assert!(f.ignored.given().is_empty());
        assert!(f.unit.paths().is_empty());
        let f = parse(&[
            "--git-url=/repo",
            "--git-path=a,b",
            "--git-path",
            "c",
            "--sync-interval=30s",
            "--git-verify-signatures-mode=first-parent",
        ]);
        assert_eq!(f.unit.paths(), ["a", "b", "c"]);
        assert_eq!(f.unit.sync_interval, Duration::from_secs(30));
        assert_eq!(f.unit.verify_mode(), VerifyMode::FirstParent);
        assert!(Flags::try_parse_from(["fluxd", "--git-url=/r", "--sync-interval=soon"]).is_err());
        let none = parse(&[]);
        assert!(none.unit.validate().unwrap_err().contains("--git-url"), "--git-url is required without --config");
        let slash = parse(&["--git-url=/r", "--git-path=/deploy"]);
        assert!(slash.unit.validate().unwrap_err().contains("leading '/'"), "as v1");
    }

    #[test]
    fn booleans_take_every_pflag_form() {
        for (form, value) in [
            ("--git-readonly", true),
            ("--git-readonly=true", true),
            ("--git-readonly=false", false),
            ("--git-readonly=1", true),
            ("--git-readonly=0", false),
            ("--git-readonly=True", true),
            ("--git-readonly=F", false),
        ] {
            assert_eq!(parse(&["--git-url=/r", form]).unit.git_readonly, value, "{form}");
        }
        for flag in [
            "git-set-author",
            "git-ci-skip",
            "git-verify-signatures",
            "sync-garbage-collection",
            "sync-garbage-collection-dry",
            "registry-disable-scanning",
            "manifest-generation",
            "sops",
            "git-secret",
            "registry-trace",
            "api-allow-unauthenticated-loopback",
        ] {
            for (suffix, want) in [("", true), ("=true", true), ("=false", false)] {
                let arg = format!("--{flag}{suffix}");
                let f = parse(&["--git-url=/r", &arg]);
                let got = match flag {
                    "git-set-author" => f.unit.git_set_author,
                    "git-ci-skip" => f.unit.git_ci_skip,
                    "git-verify-signatures" => f.unit.git_verify_signatures,
                    "sync-garbage-collection" => f.unit.sync_garbage_collection,
                    "sync-garbage-collection-dry" => f.unit.sync_garbage_collection_dry,
                    "registry-disable-scanning" => f.unit.registry_disable_scanning,
                    "manifest-generation" => f.unit.manifest_generation,
                    "sops" => f.unit.sops,
                    "git-secret" => f.unit.git_secret,
                    "registry-trace" => f.registry_trace,
                    _ => f.api_allow_unauthenticated_loopback,
                };
                assert_eq!(got, want, "{arg}");
            }
        }
        // As pflag: a boolean's value needs '=' (`--git-readonly false` leaves "false" over).
        assert!(Flags::try_parse_from(["fluxd", "--git-url=/r", "--git-readonly", "false"]).is_err());
        assert!(Flags::try_parse_from(["fluxd", "--git-url=/r", "--git-readonly=maybe"]).is_err());
        // The deprecated in-cluster switch is accepted in every form and reported as ignored.
        for form in ["--k8s-in-cluster", "--k8s-in-cluster=true", "--k8s-in-cluster=false"] {
            let f = parse(&["--git-url=/r", form]);
            assert_eq!(f.ignored.given().len(), 1, "{form}");
        }
    }

    #[test]
    fn addresses_take_every_form() {
        for (arg, want) in [
            (":3030", "0.0.0.0:3030"),
            ("0.0.0.0:3031", "0.0.0.0:3031"),
            ("127.0.0.1:3032", "127.0.0.1:3032"),
            ("[::1]:3033", "[::1]:3033"),
            ("localhost:3034", "127.0.0.1:3034"),
        ] {
            let want: SocketAddr = want.parse().unwrap();
            let f = parse(&["--git-url=/r", "--listen", arg, &format!("--listen-metrics={arg}")]);
            assert_eq!(f.listen, want, "--listen {arg}");
            assert_eq!(f.listen_metrics, Some(want), "--listen-metrics={arg}");
            assert_eq!(parse(&["-l", arg]).listen, want, "-l {arg}");
            assert_eq!(parse(&[&format!("-l={arg}")]).listen, want, "-l={arg}");
        }
        for bad in [":", ":http", "3030", ":70000", "nowhere.invalid:1"] {
            assert!(Flags::try_parse_from(["fluxd", "--listen", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn v1_rules_between_flags() {
        let label = parse(&["--git-url=/r", "--git-label=prod", "--git-sync-tag=other"]);
        assert_eq!(label.unit.sync_tag(), "prod", "--git-label overrides --git-sync-tag");
        let deprecated = parse(&["--git-url=/r", "--git-verify-signatures"]);
        assert_eq!(deprecated.unit.verify_mode(), VerifyMode::All);
        let both = parse(&["--git-url=/r", "--git-verify-signatures", "--git-verify-signatures-mode=none"]);
        assert_eq!(both.unit.verify_mode(), VerifyMode::None, "the mode, when given, wins");
        assert!(Flags::try_parse_from(["fluxd", "--git-verify-signatures-mode=sometimes"]).is_err());
        let readonly = parse(&["--git-url=/r", "--git-readonly"]);
        assert_eq!(readonly.unit.sync_state(), SyncState::Secret, "v1 forces secret state");
        assert_eq!(parse(&["--sync-state=secret"]).unit.sync_state(), SyncState::Secret);
        let ns = parse(&["--k8s-allow-namespace=a,b", "--k8s-namespace-whitelist=c", "--k8s-allow-namespace=a"]);
        assert_eq!(ns.unit.allowed_namespaces(), ["a", "b", "c"]);
        let kube = parse(&["--kube-config=/k"]);
        assert_eq!(kube.kubeconfig, Some(PathBuf::from("/k")), "v1's deprecated spelling");
        let exclude = parse(&["--registry-exclude-image=quay.io/*"]);
        assert_eq!(split_list(&exclude.unit.registry_exclude_image), ["quay.io/*"], "replaces the default");
    }

    #[test]
    fn ignored_flags_are_accepted_and_named_with_a_reason() {
        let f = parse(&[
            "--git-url=/r",
            "--memcached-hostname=memcached.flux",
            "--memcached-port=11211",
            "--memcached-timeout=1s",
            "--memcached-service=",
            "--kubernetes-kubectl=/usr/bin/kubectl",
            "--connect=wss://cloud.weave.works/api/flux",
            "--token=abc",
            "--rpc-timeout=10s",
            "--registry-cache-expiry=1h",
            "--registry-ecr-region=eu-west-1",
            "--registry-ecr-include-id=1",
            "--registry-ecr-exclude-id=602401143452",
        ]);
        let given = f.ignored.given();
        assert_eq!(given.len(), 12);
        assert!(given.iter().all(|(name, why)| name.starts_with("--") && !why.is_empty()));
        assert!(given.iter().any(|(name, why)| *name == "--memcached-hostname" && why.contains("on disk")));
    }

    #[test]
    fn prune_guard_takes_a_share_or_off() {
        assert_eq!(parse(&["--git-url=/r"]).unit.sync_prune_guard, PruneGuardFlag(Some(50)), "the default");
        for (form, value) in [
            ("25%", Some(25)),
            ("100", Some(100)),
            (" 7 % ", Some(7)),
            ("0", None),
            ("off", None),
            ("OFF", None),
            ("false", None),
        ] {
            assert_eq!(prune_guard(form), Ok(PruneGuardFlag(value)), "{form}");
        }
        for bad in ["101%", "-1", "half", "", "50%%"] {
            assert!(prune_guard(bad).is_err(), "{bad}");
        }
        let f = parse(&["--git-url=/r", "--sync-prune-guard=off", "--dry-run", "--dry-run-format=markdown"]);
        assert_eq!((f.unit.sync_prune_guard, f.dry_run_format), (PruneGuardFlag(None), DryRunFormat::Markdown));
        assert_eq!(
            parse(&["--git-url=/r", "--dry-run", "--dry-run-branch=pr-7"]).dry_run_branch.as_deref(),
            Some("pr-7")
        );
    }

    #[test]
    fn sops_is_off_by_default_and_a_unit_key_too() {
        let f = Flags::try_parse_from(["fluxd", "--git-url=/r"]).unwrap();
        assert!(!f.unit.sops, "Flux v1's default");
        assert!(Flags::try_parse_from(["fluxd", "--git-url=/r", "--sops"]).unwrap().unit.sops);
        let config = crate::config::parse("f.yaml", "units:\n- name: a\n  git-url: /r\n  sops: true\n").unwrap();
        assert!(crate::config::unit_flags("f.yaml", &config.units[0]).unwrap().sops);
    }

    #[test]
    fn manifest_generation_flags() {
        let f = Flags::try_parse_from(["fluxd", "--git-url=/r"]).unwrap();
        assert!(!f.unit.manifest_generation);
        assert_eq!(f.unit.sync_timeout, Duration::from_secs(60), "Flux v1's default");
        let f = Flags::try_parse_from([
            "fluxd",
            "--git-url=/r",
            "--manifest-generation",
            "--sync-timeout=90s",
            "--kustomize-command=kustomize build --enable-helm",
        ])
        .unwrap();
        assert!(f.unit.validate().is_ok() && f.unit.manifest_generation);
        assert_eq!(f.unit.sync_timeout, Duration::from_secs(90));
        assert_eq!(f.unit.kustomize_command.as_deref(), Some("kustomize build --enable-helm"));
        let zero = Flags::try_parse_from(["fluxd", "--git-url=/r", "--sync-timeout=0s"]).unwrap();
        assert!(zero.unit.validate().unwrap_err().contains("--sync-timeout"));
    }
}
