//! `fluxctl`, the command line of fluxd's API, with Flux v1's commands, flags, short forms,
//! defaults, environment variables and output.
//!
//! ```sh
//! export FLUX_URL=http://127.0.0.1:3030 FLUX_SERVICE_TOKEN=secret
//! cargo run -p examples --example fluxctl -- list-workloads --all-namespaces
//! ```

mod client;
mod completion;
mod fingerprint;
mod install;
mod interactive;
mod portforward;
mod resolve;
mod save;
mod table;
mod v1json;
mod watch;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use flux_api::v1::{
    ChangeCause, ContainerOutcome, Identity, ImageRef, ImageSelector, JobResult, Lock, PolicyChange, PolicyRequest,
    ReleaseResult, ReleaseSpec, ResourceId, TagFilter, WorkloadImages, WorkloadInfo, WorkloadOutcome, WorkloadSelector,
};

use crate::client::Client;
use crate::interactive::{ContainerUpdate, Menu, MenuItem};

/// fluxctl helps you deploy your code.
///
/// Connecting: to the fluxd named by --url (or FLUX_URL); without one, through a port forward
/// to the fluxd pod in --k8s-fwd-ns of the current kubectl context, as Flux v1 did.
#[derive(Debug, Parser)]
#[command(name = "fluxctl", version, about, long_about)]
struct Cli {
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace in which fluxd is running, for creating a port forward to access the API. No
    /// port forward is created if a URL is given.
    #[arg(long = "k8s-fwd-ns", env = "FLUX_FORWARD_NAMESPACE", default_value = "default", global = true)]
    k8s_fwd_ns: String,
    /// Labels used to select the fluxd pod a port forward should be created for.
    #[arg(long = "k8s-fwd-labels", env = "FLUX_FORWARD_LABELS", default_value = "app=flux", global = true,
          value_parser = resolve::labels)]
    k8s_fwd_labels: BTreeMap<String, String>,
    /// Base URL of the Flux API (Flux v1's `.../api/flux` form works too).
    #[arg(short = 'u', long, env = "FLUX_URL", global = true)]
    url: Option<String>,
    /// The API token (else env FLUX_SERVICE_TOKEN or FLUX_TOKEN; through a port forward, the
    /// `flux-api-token` Secret next to fluxd).
    #[arg(short = 't', long, global = true, hide_env_values = true)]
    token: Option<String>,
    /// Global command timeout: every request and every wait.
    #[arg(long, env = "FLUX_TIMEOUT", default_value = "60s", global = true, value_parser = resolve::go_duration)]
    timeout: Duration,
    /// The sync unit to talk about, when fluxd runs several.
    #[arg(long, env = flux_api::v1::UNIT_ENV, global = true)]
    unit: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Output the version of fluxctl.
    Version,
    /// Show deployed and available images.
    ListImages(ListImagesArgs),
    /// List workloads currently running in the cluster.
    #[command(alias = "list-controllers")]
    ListWorkloads(ListWorkloadsArgs),
    /// Release a new version of a workload.
    Release(Box<ReleaseArgs>),
    /// Turn on automatic deployment for a workload.
    Automate(PolicyCommandArgs),
    /// Turn off automatic deployment for a workload.
    Deautomate(PolicyCommandArgs),
    /// Lock a workload, so it cannot be deployed.
    Lock(PolicyCommandArgs),
    /// Unlock a workload, so it can be deployed.
    Unlock(PolicyCommandArgs),
    /// Manage policies for a workload.
    ///
    /// Tag filter patterns are given as 'container=pattern', such as 'foo=1.*' where an
    /// asterisk means 'match anything'. If both --tag-all and --tag are given, --tag-all applies
    /// to the containers not named.
    Policy(PolicyArgs),
    /// Save workload definitions to local files in cluster-native format.
    Save(SaveArgs),
    /// Display SSH public key.
    Identity(IdentityArgs),
    /// Synchronize the cluster with the git repository, now.
    Sync(SyncArgs),
    /// Suspend the unit (its syncs apply nothing, its automation stops), or with --workload
    /// only that workload's automation; kept across fluxd restarts until `resume`.
    Suspend(SuspendArgs),
    /// Resume the unit, or with --workload that workload's automation.
    Resume(ResumeArgs),
    /// Print the Kubernetes manifests that install fluxd in a cluster.
    Install(install::InstallArgs),
    /// Output shell completion code for the specified shell (bash, zsh, or fish).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: completion::CompletionShell,
    },
}

#[derive(Debug, clap::Args)]
struct Output {
    /// Output format (tab or json).
    #[arg(short = 'o', long = "output-format", visible_alias = "output", default_value = "tab")]
    output_format: String,
    /// Don't print headers (default print headers).
    #[arg(long)]
    no_headers: bool,
}

impl Output {
    fn json(&self) -> Result<bool, String> {
        match self.output_format.as_str() {
            "json" => Ok(true),
            "tab" => Ok(false),
            _ => Err("invalid output format specified".into()),
        }
    }
}

#[derive(Debug, clap::Args)]
struct ListWorkloadsArgs {
    /// Confine query to namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Query across all namespaces.
    #[arg(short, long)]
    all_namespaces: bool,
    /// Filter workloads by container name.
    #[arg(short, long)]
    container: Option<String>,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct ListImagesArgs {
    /// Namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Show images for this workload (`kind/name` takes --namespace).
    #[arg(short, long)]
    workload: Option<String>,
    /// Number of images to show (0 for all).
    #[arg(short, long, default_value_t = 10)]
    limit: usize,
    /// Deprecated: --workload.
    #[arg(short = 'c', long, hide = true)]
    controller: Option<String>,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct CauseArgs {
    /// Attach a message to the update.
    #[arg(short, long)]
    message: Option<String>,
    /// Override the user reported as initiating the update (default: git config's `user.name
    /// <user.email>`).
    #[arg(long, env = "FLUX_FORCE_USER")]
    user: Option<String>,
}

impl CauseArgs {
    fn cause(&self) -> ChangeCause {
        ChangeCause { user: self.user.clone().or_else(resolve::git_author), message: self.message.clone() }
    }
}

#[derive(Debug, clap::Args)]
struct SuspendArgs {
    /// Workload namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Only this workload's automation (`namespace:kind/name`, or `kind/name` in --namespace).
    #[arg(short, long)]
    workload: Option<String>,
    #[command(flatten)]
    cause: CauseArgs,
}

#[derive(Debug, clap::Args)]
struct ResumeArgs {
    /// Workload namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Only this workload's automation (`namespace:kind/name`, or `kind/name` in --namespace).
    #[arg(short, long)]
    workload: Option<String>,
    /// Override the user reported as resuming (default: git config's `user.name <user.email>`).
    #[arg(long, env = "FLUX_FORCE_USER")]
    user: Option<String>,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Workload namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// The workload (`namespace:kind/name`, or `kind/name` in --namespace).
    #[arg(short, long)]
    workload: Option<String>,
    /// Deprecated: --workload.
    #[arg(short = 'c', long, hide = true)]
    controller: Option<String>,
}

#[derive(Debug, clap::Args)]
struct PolicyCommandArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    cause: CauseArgs,
    /// Include skipped (and ignored, with -vv) workloads in output.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, clap::Args)]
struct PolicyArgs {
    #[command(flatten)]
    target: Target,
    /// Tag filter pattern to apply to all containers (`*` clears them).
    #[arg(long)]
    tag_all: Option<String>,
    /// Tag filter container/pattern pairs (repeatable, or comma-separated).
    #[arg(long)]
    tag: Vec<String>,
    /// Automate workload.
    #[arg(long)]
    automate: bool,
    /// Deautomate workload.
    #[arg(long)]
    deautomate: bool,
    /// Lock workload.
    #[arg(long)]
    lock: bool,
    /// Unlock workload.
    #[arg(long)]
    unlock: bool,
    #[command(flatten)]
    cause: CauseArgs,
    /// Include skipped (and ignored, with -vv) workloads in output.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    /// Workload namespace (default: the kube context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// List of workloads to release <namespace>:<kind>/<name> (no short form: -w is --watch).
    #[arg(long = "workload", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Release all workloads.
    #[arg(long)]
    all: bool,
    /// Update a specific image.
    #[arg(short = 'i', long)]
    update_image: Option<String>,
    /// Update all images to latest versions.
    #[arg(long)]
    update_all_images: bool,
    /// List of workloads to exclude.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Do not release anything; just report back what would have been done.
    #[arg(long)]
    dry_run: bool,
    /// Select interactively which containers to update.
    #[arg(long)]
    interactive: bool,
    /// Disregard locks and container image filters (has no effect when used with --all or
    /// --update-all-images).
    #[arg(short, long)]
    force: bool,
    /// Watch rollout progress during release.
    #[arg(short, long)]
    watch: bool,
    /// Deprecated: --workload.
    #[arg(short = 'c', long = "controller", hide = true, value_delimiter = ',')]
    controllers: Vec<String>,
    #[command(flatten)]
    cause: CauseArgs,
    /// Include skipped (and ignored, with -vv) workloads in output.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, clap::Args)]
struct SaveArgs {
    /// Output path for exported config; '-' is stdout; a directory gets one file per object.
    #[arg(short, long, default_value = "-")]
    out: String,
}

#[derive(Debug, clap::Args)]
struct IdentityArgs {
    /// Generate a new identity.
    #[arg(short, long)]
    regenerate: bool,
    /// Show fingerprint of public key.
    #[arg(short = 'l', long)]
    fingerprint: bool,
    /// Show ASCII art representation with fingerprint (implies -l).
    #[arg(short, long)]
    visual: bool,
    /// The fingerprint's hash: Flux v1's md5 (`aa:bb:...`), or sha256 (`SHA256:...`).
    #[arg(short = 'E', long, value_enum, default_value = "md5")]
    hash: fingerprint::Hash,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, as every other error: clap's first, without its "error: ".
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("Error: {}", first.strip_prefix("error: ").unwrap_or(first));
            return ExitCode::FAILURE;
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// The client of fluxd: `--url`, else a port forward to its pod (kept open while the command
/// runs).
async fn connect(cli: &Cli) -> Result<(Client, Option<portforward::Forward>), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let token = cli.token.clone().or_else(|| env("FLUX_SERVICE_TOKEN")).or_else(|| env("FLUX_TOKEN"));
    let (url, forward) = match &cli.url {
        Some(url) if !url.is_empty() => (url.clone(), None),
        _ => {
            let forward =
                portforward::start(cli.context.as_deref(), &cli.k8s_fwd_ns, &cli.k8s_fwd_labels, cli.timeout).await?;
            (forward.url.clone(), Some(forward))
        }
    };
    let token = token.or_else(|| forward.as_ref().and_then(|f| f.token.clone()));
    Ok((Client::new(&url, token, cli.unit.clone(), cli.timeout)?, forward))
}

async fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Install(args) => return install::run(args),
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Completion { shell } => {
            let script = completion::script(*shell, &mut Cli::command());
            return std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(|e| format!("cannot write the completion script: {e}"));
        }
        _ => {}
    }
    let (client, _forward) = connect(&cli).await?;
    let context = cli.context.as_deref();
    let timeout = cli.timeout;
    match cli.command {
        Command::ListWorkloads(args) => list_workloads(&client, args, context).await,
        Command::ListImages(args) => list_images(&client, args, context).await,
        Command::Release(args) => release(&client, *args, context, timeout).await,
        Command::Automate(a) => simple_policy(&client, a, context, timeout, |_| vec![PolicyChange::Automate]).await,
        Command::Deautomate(a) => simple_policy(&client, a, context, timeout, |_| vec![PolicyChange::Deautomate]).await,
        Command::Lock(a) => {
            simple_policy(&client, a, context, timeout, |c| {
                vec![PolicyChange::Lock(Lock { message: c.message.clone(), user: c.user.clone() })]
            })
            .await
        }
        Command::Unlock(a) => simple_policy(&client, a, context, timeout, |_| vec![PolicyChange::Unlock]).await,
        Command::Policy(args) => policy_command(&client, args, context, timeout).await,
        Command::Save(args) => {
            let export = client.get_text("/export").await.map_err(|e| format!("exporting config: {e}"))?;
            let objects = save::objects(&export)?;
            save::write(&objects, &args.out, &mut std::io::stdout())
        }
        Command::Identity(args) => identity(&client, args).await,
        Command::Sync(args) => sync(&client, args, timeout).await,
        Command::Suspend(args) => suspend(&client, args, context).await,
        Command::Resume(args) => resume(&client, args, context).await,
        Command::Install(_) | Command::Version | Command::Completion { .. } => Ok(()),
    }
}

async fn list_workloads(client: &Client, args: ListWorkloadsArgs, context: Option<&str>) -> Result<(), String> {
    let json = args.output.json()?;
    let query = if args.all_namespaces {
        Vec::new()
    } else {
        vec![("namespace", resolve::namespace_or_context(args.namespace.as_deref(), context))]
    };
    let (mut list, warning): (Vec<WorkloadInfo>, _) = client.get_listing("/workloads", &query).await?;
    warning.iter().for_each(|w| eprintln!("{w}"));
    if let Some(name) = &args.container {
        list.retain(|w| w.containers.iter().any(|c| &c.name == name));
    }
    list.sort_by_key(|w| w.id.to_string());
    if json {
        print_json(&list.iter().map(v1json::workload).collect::<Vec<_>>())
    } else {
        print!("{}", table::workloads(&list, !args.output.no_headers));
        Ok(())
    }
}

/// Prints cobra's deprecation notice of `--controller`, and takes it as `--workload`.
fn workload_or_controller(workload: Option<String>, controller: Option<String>) -> Result<Option<String>, String> {
    if controller.is_some() {
        eprintln!("Flag --controller has been deprecated, changed to --workload, use that instead");
    }
    match (workload, controller) {
        (Some(_), Some(_)) => Err("can't specify both the controller and workload".into()),
        (w, c) => Ok(w.or(c)),
    }
}

async fn list_images(client: &Client, args: ListImagesArgs, context: Option<&str>) -> Result<(), String> {
    let json = args.output.json()?;
    let namespace = resolve::namespace_or_context(args.namespace.as_deref(), context);
    let workload = workload_or_controller(args.workload, args.controller)?;
    let query: Vec<(&str, String)> = match &workload {
        Some(w) => vec![("workload", resolve::workload_id(&namespace, w)?)],
        None => Vec::new(),
    };
    let (mut list, warning): (Vec<WorkloadImages>, _) = client.get_listing("/images", &query).await?;
    warning.iter().for_each(|w| eprintln!("{w}"));
    // Without --workload, Flux v1 listed the images of the namespace's workloads.
    if workload.is_none() {
        list.retain(|w| w.workload.namespace() == Some(namespace.as_str()));
    }
    list.sort_by_key(|w| w.workload.to_string());
    if json {
        print_json(&list.iter().map(|w| v1json::images(w, args.limit)).collect::<Vec<_>>())
    } else {
        print!("{}", table::images(&list, args.limit, !args.output.no_headers));
        Ok(())
    }
}

/// The workload of `target`, resolved in its namespace; Flux v1's error when none is given.
fn target_id(target: Target, context: Option<&str>) -> Result<ResourceId, String> {
    let workload = workload_or_controller(target.workload, target.controller)?
        .ok_or_else(|| "-w, --workload is required".to_owned())?;
    let namespace = resolve::namespace_or_context(target.namespace.as_deref(), context);
    parse_id(&resolve::workload_id(&namespace, &workload)?)
}

fn parse_id(id: &str) -> Result<ResourceId, String> {
    id.parse().map_err(|e: flux_api::v1::ParseError| e.to_string())
}

async fn simple_policy(
    client: &Client,
    args: PolicyCommandArgs,
    context: Option<&str>,
    timeout: Duration,
    changes: impl Fn(&ChangeCause) -> Vec<PolicyChange>,
) -> Result<(), String> {
    let cause = args.cause.cause();
    let workload = target_id(args.target, context)?;
    let request =
        PolicyRequest { workload, changes: changes(&cause), tag_all: None, user: cause.user, message: cause.message };
    submit_policy(client, &request, args.verbose, timeout).await
}

/// `--tag` values, split on commas that start a new `container=filter` pair (so that a filter
/// like `semver:>=1.0,<2` stays whole).
fn split_tags(values: &[String]) -> Vec<String> {
    let starts_pair = |piece: &str| {
        piece.split_once('=').is_some_and(|(c, _)| {
            !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
        })
    };
    let mut out: Vec<String> = Vec::new();
    for value in values {
        for piece in value.split(',') {
            match out.last_mut() {
                Some(last) if !starts_pair(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => out.push(piece.to_owned()),
            }
        }
    }
    out
}

/// The changes `policy` flags ask for, in a fixed order (Flux v1's checks first).
fn policy_changes(args: &PolicyArgs, cause: &ChangeCause) -> Result<Vec<PolicyChange>, String> {
    if args.automate && args.deautomate {
        return Err("automate and deautomate both specified".into());
    }
    if args.lock && args.unlock {
        return Err("lock and unlock both specified".into());
    }
    let mut changes = Vec::new();
    if args.automate {
        changes.push(PolicyChange::Automate);
    }
    if args.deautomate {
        changes.push(PolicyChange::Deautomate);
    }
    if args.lock {
        changes.push(PolicyChange::Lock(Lock { message: cause.message.clone(), user: cause.user.clone() }));
    }
    if args.unlock {
        changes.push(PolicyChange::Unlock);
    }
    for tag in split_tags(&args.tag) {
        let (container, filter) = tag
            .split_once('=')
            .ok_or_else(|| format!("invalid container/tag pair: {tag:?}. Expected format is 'container=filter'"))?;
        changes.push(if filter == "*" {
            PolicyChange::ClearTagFilter { container: container.to_owned() }
        } else if filter.trim().is_empty() {
            return Err(format!("--tag {tag}: an empty tag filter"));
        } else {
            PolicyChange::SetTagFilter { container: container.to_owned(), filter: TagFilter(filter.to_owned()) }
        });
    }
    Ok(changes)
}

async fn policy_command(
    client: &Client,
    args: PolicyArgs,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let cause = args.cause.cause();
    let changes = policy_changes(&args, &cause)?;
    let tag_all = args.tag_all.as_deref().map(|f| (f != "*").then(|| f.to_owned()));
    let workload = target_id(args.target, context)?;
    if changes.is_empty() && tag_all.is_none() {
        return Err("no policy change given (--automate, --lock, --tag, ...)".into());
    }
    let request = PolicyRequest { workload, changes, tag_all, user: cause.user, message: cause.message };
    submit_policy(client, &request, args.verbose, timeout).await
}

/// Submits a policy change and waits for it, printing as Flux v1 did: the workloads changed
/// (stdout), then `Commit pushed:\t<rev>` or `Nothing to do` (stderr).
async fn submit_policy(client: &Client, request: &PolicyRequest, verbose: u8, timeout: Duration) -> Result<(), String> {
    let id = client.post_job("/policies", request).await?;
    let JobResult::Policy { revision, diffs } = client.wait_job(&id, timeout).await? else {
        return Err("unexpected job result".into());
    };
    let items: Vec<MenuItem> =
        diffs.iter().map(|d| MenuItem::new(d.workload.to_string(), "success", String::new(), None)).collect();
    if !items.is_empty() || verbose > 0 {
        print!("{}", Menu::new(items).print());
    }
    match revision {
        Some(rev) => eprintln!("Commit pushed:\t{}", &rev[..rev.len().min(7)]),
        None => eprintln!("Nothing to do"),
    }
    Ok(())
}

/// A release's lines as Flux v1's result listing had them, at `verbose` (skipped workloads from
/// 1, ignored ones from 2).
fn release_items(result: &ReleaseResult, verbose: u8) -> Vec<MenuItem> {
    let mut items = Vec::new();
    let mut workloads: Vec<_> = result.workloads.iter().collect();
    workloads.sort_by_key(|w| w.workload.to_string());
    for w in workloads {
        let (status, error) = match &w.outcome {
            WorkloadOutcome::Updated => ("success", String::new()),
            WorkloadOutcome::UpToDate => ("skipped", "image(s) up to date".to_owned()),
            WorkloadOutcome::Skipped { reason } if reason == "excluded" || reason == "does not use the image" => {
                ("ignored", reason.clone())
            }
            WorkloadOutcome::Skipped { reason } => ("skipped", reason.clone()),
            WorkloadOutcome::Failed { error } => ("failed", error.clone()),
        };
        let shown = match status {
            "ignored" => verbose >= 2,
            "skipped" => verbose >= 1,
            _ => true,
        };
        if !shown {
            continue;
        }
        let id = w.workload.to_string();
        if !error.is_empty() {
            items.push(MenuItem::new(id.clone(), status, error.clone(), None));
        }
        let updates: Vec<ContainerUpdate> = w
            .containers
            .iter()
            .filter_map(|c| match &c.outcome {
                ContainerOutcome::Updated { to } => Some(ContainerUpdate {
                    container: c.container.clone(),
                    current: c.current.to_string(),
                    target: to.to_string(),
                    target_tag: to.tag().unwrap_or_default().to_owned(),
                }),
                _ => None,
            })
            .collect();
        let no_lines = error.is_empty() && updates.is_empty();
        items.extend(updates.into_iter().map(|u| MenuItem::new(id.clone(), status, String::new(), Some(u))));
        if no_lines {
            items.push(MenuItem::new(id, status, String::new(), None));
        }
    }
    items
}

/// Flux v1's checks of `release`'s flags, in its order.
fn check_release(args: &ReleaseArgs) -> Result<(), String> {
    match (args.update_image.is_some(), args.update_all_images) {
        (true, true) => return Err("please supply only one of --update-image=<image> or --update-all-images".into()),
        (false, false) => {
            return Err("please supply exactly one of --update-image=<image> or --update-all-images".into());
        }
        _ => {}
    }
    if args.workloads.is_empty() && !args.all {
        return Err("please supply either --all, or at least one --workload=<workload>".into());
    }
    if args.watch && args.dry_run {
        return Err("cannot use --watch with --dry-run".into());
    }
    if args.force && args.all && args.update_all_images {
        return Err("--force has no effect when used with --all and --update-all-images".into());
    }
    if args.force && args.all {
        eprintln!("Warning: --force will not ignore locked workloads when used with --all");
    } else if args.force && args.update_all_images {
        eprintln!("Warning: --force will not ignore container image tags when used with --update-all-images");
    }
    Ok(())
}

async fn release(
    client: &Client,
    mut args: ReleaseArgs,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    if !args.controllers.is_empty() {
        eprintln!("Flag --controller has been deprecated, changed to --workload, use that instead");
        args.workloads.append(&mut args.controllers);
    }
    check_release(&args)?;
    let namespace = resolve::namespace_or_context(args.namespace.as_deref(), context);
    let ids = |list: &[String]| -> Result<Vec<ResourceId>, String> {
        list.iter().map(|w| parse_id(&resolve::workload_id(&namespace, w)?)).collect()
    };
    let named = ids(&args.workloads)?;
    let image = match &args.update_image {
        Some(image) => ImageSelector::Image(image.parse().map_err(|e: flux_api::v1::ParseError| e.to_string())?),
        None => ImageSelector::AllLatest,
    };
    let spec = ReleaseSpec {
        workloads: if args.all { WorkloadSelector::All } else { WorkloadSelector::Only(named.clone()) },
        excludes: ids(&args.exclude)?,
        image,
        dry_run: args.dry_run || args.interactive,
        force: args.force,
        cause: args.cause.cause(),
    };
    eprintln!("{}", if spec.dry_run { "Submitting dry-run release ..." } else { "Submitting release ..." });
    let id = client.post_job("/release", &spec).await?;
    let JobResult::Release(mut result) = client.wait_job(&id, timeout).await? else {
        return Err("unexpected job result".into());
    };
    if args.interactive {
        let mut menu = Menu::new(release_items(&result, args.verbose));
        let chosen = {
            let mut tty = interactive::RawTerminal::open()?;
            let width = tty.width();
            menu.run(&mut tty, &mut std::io::stdout(), width)
        };
        let chosen = match chosen {
            Ok(chosen) => chosen,
            // As Flux v1: an abort or an empty plan is said, and is not an error.
            Err(e) => {
                eprintln!("{e}");
                return Ok(());
            }
        };
        eprintln!("Submitting selected release ...");
        result = release_selected(client, &spec, &result, &chosen, timeout).await?;
    } else if !args.dry_run {
        refuse_locked(&result, &named, args.force)?;
    }
    print!("{}", Menu::new(release_items(&result, args.verbose)).print());
    if let Some(rev) = &result.revision {
        eprintln!("Commit pushed:\t{}", rev.short());
        if watch::applied(client, rev, timeout).await? {
            eprintln!("Commit applied:\t{}", rev.short());
            if args.watch {
                eprintln!("Monitoring rollout ...");
                watch::rollout(client, &result, timeout).await?;
            }
        } else {
            eprintln!(
                "The operation succeeded, but we timed out waiting for the commit to be applied. This does not \
                 necessarily mean there is a problem. Use `fluxctl sync` to run a sync interactively."
            );
        }
    } else if !result.dry_run {
        eprintln!("Nothing to do");
    }
    release_error(&result)
}

/// A workload named with `--workload` and left out because it is locked is an error (Flux v1
/// only listed it as skipped with `-v`): the release did not do what was asked.
fn refuse_locked(result: &ReleaseResult, named: &[ResourceId], force: bool) -> Result<(), String> {
    let refused: Vec<String> = result
        .workloads
        .iter()
        .filter(|w| named.contains(&w.workload))
        .filter(|w| matches!(&w.outcome, WorkloadOutcome::Skipped { reason } if reason == "locked"))
        .map(|w| w.workload.to_string())
        .collect();
    if refused.is_empty() || force {
        return Ok(());
    }
    print!("{}", Menu::new(release_items(result, 1)).print());
    Err(format!("{} locked: use --force to release to it anyway", refused.join(", ")))
}

/// As Flux v1 said it: `<id> failed: <error>`, or `Multiple workloads failed: <ids>`.
fn release_error(result: &ReleaseResult) -> Result<(), String> {
    let failed: Vec<(String, &str)> = result
        .workloads
        .iter()
        .filter_map(|w| match &w.outcome {
            WorkloadOutcome::Failed { error } => Some((w.workload.to_string(), error.as_str())),
            _ => None,
        })
        .collect();
    match failed.as_slice() {
        [] => Ok(()),
        [(id, error)] => Err(format!("{id} failed: {error}")),
        many => Err(format!(
            "Multiple workloads failed: {}",
            many.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Releases the updates chosen in the menu: one release per image, to the workloads chosen for
/// it. A workload with an unchosen update to the same image is refused (a release writes an
/// image to every container of the workload that runs its repository).
async fn release_selected(
    client: &Client,
    plan: &ReleaseSpec,
    planned: &ReleaseResult,
    chosen: &[(String, ContainerUpdate)],
    timeout: Duration,
) -> Result<ReleaseResult, String> {
    let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (workload, update) in chosen {
        let list = by_image.entry(update.target.clone()).or_default();
        if !list.contains(workload) {
            list.push(workload.clone());
        }
    }
    for w in &planned.workloads {
        for c in &w.containers {
            let ContainerOutcome::Updated { to } = &c.outcome else { continue };
            let id = w.workload.to_string();
            let picked = chosen.iter().any(|(cw, u)| cw == &id && u.container == c.container);
            if !picked && by_image.get(&to.to_string()).is_some_and(|ws| ws.contains(&id)) {
                return Err(format!(
                    "{id}: container {} would be updated too (it runs the same image); select both or neither",
                    c.container
                ));
            }
        }
    }
    let mut combined = ReleaseResult { revision: None, workloads: Vec::new(), dry_run: false };
    for (image, workloads) in by_image {
        let image: ImageRef = image.parse().map_err(|e: flux_api::v1::ParseError| e.to_string())?;
        let spec = ReleaseSpec {
            workloads: WorkloadSelector::Only(workloads.iter().map(|w| parse_id(w)).collect::<Result<_, _>>()?),
            excludes: Vec::new(),
            image: ImageSelector::Image(image),
            dry_run: false,
            force: plan.force,
            cause: plan.cause.clone(),
        };
        let id = client.post_job("/release", &spec).await?;
        let JobResult::Release(result) = client.wait_job(&id, timeout).await? else {
            return Err("unexpected job result".into());
        };
        combined.revision = result.revision.or(combined.revision);
        combined.workloads.extend(result.workloads.into_iter().filter(|w| w.outcome != WorkloadOutcome::UpToDate));
    }
    Ok(combined)
}

async fn identity(client: &Client, args: IdentityArgs) -> Result<(), String> {
    let identity: Identity = if args.regenerate {
        client.post_json("/identity/regenerate").await.map_err(|e| {
            // The status fluxd answered, not a port or address that happens to hold the digits.
            if e.starts_with("fluxd answered 404") || e.starts_with("fluxd answered 405") {
                "fluxd does not support --regenerate: it has no route to regenerate its deploy key \
                 (POST /api/v1/identity/regenerate)"
                    .to_owned()
            } else {
                e
            }
        })?
    } else {
        client.get("/identity", &[]).await?
    };
    let Some(key) = identity.public_key else {
        return Err("fluxd has no deploy key configured".into());
    };
    if !(args.fingerprint || args.visual) {
        println!("{}", key.trim_end());
        return Ok(());
    }
    let key = fingerprint::PublicKey::parse(&key)?;
    match args.hash {
        fingerprint::Hash::Md5 => println!("{}", key.md5_hex()),
        fingerprint::Hash::Sha256 => println!("{}", key.fingerprint(args.hash)),
    }
    if args.visual {
        print!("{}", key.randomart(args.hash));
    }
    Ok(())
}

/// `sync`'s flags.
#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Let this sync (or the next one that prunes) delete what the prune guard holds, once.
    #[arg(long)]
    allow_prune: bool,
}

/// Fetches and syncs now, and waits for it, saying what Flux v1 said (on stderr).
async fn sync(client: &Client, args: SyncArgs, timeout: Duration) -> Result<(), String> {
    eprintln!("Synchronizing with the git repository ...");
    let path = if args.allow_prune { "/sync?allow_prune=true" } else { "/sync" };
    let id = client.post_job(path, &serde_json::json!({})).await?;
    let result = client.wait_job(&id, timeout).await.inspect_err(|_| {
        eprintln!("Failed to complete sync job (ID {id:?})");
    })?;
    let JobResult::Sync(s) = result else {
        return Err("unexpected job result".into());
    };
    let rev = &s.revision[..s.revision.len().min(7)];
    eprintln!("Revision to apply is {rev}");
    eprintln!("Waiting for {rev} to be applied ...");
    if let Some(held) = &s.held {
        return Err(format!("sync of {rev} held by {}: {} (nothing applied)", held.by, held.reason));
    }
    if !s.success {
        let first = s.errors.first().map(|e| e.message.clone()).unwrap_or_default();
        return Err(format!("sync of {rev} failed: {first}"));
    }
    eprintln!("Done.");
    Ok(())
}

/// The workload of `suspend`/`resume`, in full.
fn suspended_workload(
    namespace: Option<&str>,
    workload: Option<&str>,
    context: Option<&str>,
) -> Result<Option<flux_api::v1::ResourceId>, String> {
    let Some(workload) = workload else { return Ok(None) };
    let id = resolve::workload_id(&resolve::namespace_or_context(namespace, context), workload)?;
    id.parse().map(Some).map_err(|e: flux_api::v1::ParseError| e.to_string())
}

async fn suspend(client: &Client, args: SuspendArgs, context: Option<&str>) -> Result<(), String> {
    let workload = suspended_workload(args.namespace.as_deref(), args.workload.as_deref(), context)?;
    let cause = args.cause.cause();
    let request = flux_api::v1::SuspendRequest { workload: workload.clone(), user: cause.user, message: cause.message };
    let status: flux_api::v1::Status = client.post_body("/suspend", &request).await?;
    match workload {
        Some(id) => {
            let found = status.suspended_workloads.iter().any(|w| w.workload == id);
            if !found {
                return Err(format!("fluxd did not record {id} as suspended"));
            }
            eprintln!("Suspended the automation of {id}.");
        }
        None if status.suspended.is_some() => eprintln!("Suspended: syncs apply nothing and automation stops."),
        None => return Err("fluxd did not record the unit as suspended".into()),
    }
    Ok(())
}

async fn resume(client: &Client, args: ResumeArgs, context: Option<&str>) -> Result<(), String> {
    let workload = suspended_workload(args.namespace.as_deref(), args.workload.as_deref(), context)?;
    let user = args.user.or_else(resolve::git_author);
    let request = flux_api::v1::ResumeRequest { workload: workload.clone(), user };
    let status: flux_api::v1::Status = client.post_body("/resume", &request).await?;
    match workload {
        Some(id) if status.suspended_workloads.iter().any(|w| w.workload == id) => {
            return Err(format!("{id} is still suspended"));
        }
        Some(id) => eprintln!("Resumed the automation of {id}."),
        None if status.suspended.is_some() => return Err("the unit is still suspended".into()),
        None => eprintln!("Resumed."),
    }
    Ok(())
}
