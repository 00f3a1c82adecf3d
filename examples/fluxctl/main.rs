//! `fluxctl`, the command line of fluxd's API, with Flux v1's commands and flags.
//!
//! ```sh
//! export FLUX_URL=http://127.0.0.1:3030 FLUX_TOKEN=secret
//! cargo run -p examples --example fluxctl -- list-workloads --all-namespaces
//! ```

#[path = "../common/api.rs"]
mod api_types;

mod client;
mod table;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use flux_core::automation::{ImageSelector, ReleaseSpec, WorkloadImages, WorkloadSelector};
use flux_core::{ChangeCause, ImageRef, Lock, PolicyChange, ResourceId, TagFilter};

use crate::api_types::{Identity, JobResult, PolicyRequest, Version, WorkloadInfo};
use crate::client::Client;

/// How long a job may take before fluxctl gives up waiting.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Tab,
    Json,
}

/// Talks to fluxd: list workloads and images, release, automate, lock, set policies, sync.
#[derive(Debug, Parser)]
#[command(name = "fluxctl", version, about)]
struct Cli {
    /// fluxd's API.
    #[arg(long, env = "FLUX_URL", default_value = "http://127.0.0.1:3030", global = true)]
    url: String,
    /// The API token.
    #[arg(long, env = "FLUX_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the workloads, their containers and images, rollout status and policies.
    ListWorkloads {
        /// Only this namespace (default: `default`).
        #[arg(short, long, conflicts_with = "all_namespaces")]
        namespace: Option<String>,
        /// Every namespace.
        #[arg(short = 'a', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "tab")]
        output: Output,
    },
    /// List the images the workloads run and the tags available, newest first.
    ListImages {
        /// Only this workload (`namespace:kind/name`).
        #[arg(short, long)]
        workload: Option<ResourceId>,
        /// How many tags per image (0: all).
        #[arg(short, long, default_value_t = 10)]
        limit: usize,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "tab")]
        output: Output,
    },
    /// Release new images to workloads (a commit in git).
    Release(ReleaseArgs),
    /// Turn automation on for a workload.
    Automate(WorkloadArg),
    /// Turn automation off for a workload.
    Deautomate(WorkloadArg),
    /// Lock a workload: no automation nor release changes it unless forced.
    Lock {
        #[command(flatten)]
        workload: WorkloadArg,
        #[command(flatten)]
        cause: CauseArgs,
    },
    /// Unlock a workload.
    Unlock {
        #[command(flatten)]
        workload: WorkloadArg,
        #[command(flatten)]
        cause: CauseArgs,
    },
    /// Change a workload's policies.
    Policy(PolicyArgs),
    /// Fetch git and sync the cluster now.
    Sync,
    /// The public key fluxd uses for git (add it as a deploy key).
    Identity,
    /// fluxctl's and fluxd's versions.
    Version,
}

#[derive(Debug, clap::Args)]
struct WorkloadArg {
    /// The workload (`namespace:kind/name`).
    #[arg(short, long)]
    workload: ResourceId,
}

#[derive(Debug, clap::Args)]
struct CauseArgs {
    /// Why (recorded in the commit).
    #[arg(short, long)]
    message: Option<String>,
    /// Who (recorded in the commit).
    #[arg(long, env = "FLUX_FORCE_USER")]
    user: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    /// Workloads to release to (repeatable).
    #[arg(short, long = "workload", required_unless_present = "all", conflicts_with = "all")]
    workloads: Vec<ResourceId>,
    /// Release to every workload.
    #[arg(long)]
    all: bool,
    /// The image to release (`repo:tag`).
    #[arg(short = 'i', long, required_unless_present = "update_all_images", conflicts_with = "update_all_images")]
    update_image: Option<ImageRef>,
    /// Release each container's latest allowed image.
    #[arg(long)]
    update_all_images: bool,
    /// Workloads left out (repeatable).
    #[arg(long)]
    exclude: Vec<ResourceId>,
    /// Show what would change; commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Release to locked workloads, and tags their filters exclude.
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    cause: CauseArgs,
    /// Follow the release until the new images run, or it fails.
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, clap::Args)]
struct PolicyArgs {
    #[command(flatten)]
    workload: WorkloadArg,
    /// Turn automation on.
    #[arg(long, conflicts_with = "deautomate")]
    automate: bool,
    /// Turn automation off.
    #[arg(long)]
    deautomate: bool,
    /// Lock.
    #[arg(long, conflicts_with = "unlock")]
    lock: bool,
    /// Unlock.
    #[arg(long)]
    unlock: bool,
    /// A container's tag filter, `CONTAINER=FILTER` (`glob:1.*`, `semver:~1`, `regex:^v`; `*`
    /// clears it). Repeatable.
    #[arg(long)]
    tag: Vec<String>,
    /// The tag filter of every container (`*` clears them).
    #[arg(long)]
    tag_all: Option<String>,
    #[command(flatten)]
    cause: CauseArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

async fn run(cli: Cli) -> Result<(), String> {
    let client = Client::new(&cli.url, cli.token.clone())?;
    match cli.command {
        Command::ListWorkloads { namespace, all_namespaces, output } => {
            let query = if all_namespaces {
                Vec::new()
            } else {
                vec![("namespace", namespace.unwrap_or_else(|| "default".to_owned()))]
            };
            let list: Vec<WorkloadInfo> = client.get("/workloads", &query).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Tab => {
                    print!("{}", table::workloads(&list));
                    Ok(())
                }
            }
        }
        Command::ListImages { workload, limit, output } => {
            let query: Vec<(&str, String)> = workload.iter().map(|w| ("workload", w.to_string())).collect();
            let list: Vec<WorkloadImages> = client.get("/images", &query).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Tab => {
                    print!("{}", table::images(&list, limit));
                    Ok(())
                }
            }
        }
        Command::Release(args) => release(&client, args).await,
        Command::Automate(w) => policy(&client, w.workload, vec![PolicyChange::Automate], None, None).await,
        Command::Deautomate(w) => policy(&client, w.workload, vec![PolicyChange::Deautomate], None, None).await,
        Command::Lock { workload, cause } => {
            let lock = Lock { message: cause.message.clone(), user: cause.user.clone() };
            policy(&client, workload.workload, vec![PolicyChange::Lock(lock)], None, Some(cause)).await
        }
        Command::Unlock { workload, cause } => {
            policy(&client, workload.workload, vec![PolicyChange::Unlock], None, Some(cause)).await
        }
        Command::Policy(args) => {
            let changes = policy_changes(&args)?;
            let tag_all = args.tag_all.as_deref().map(|f| (f != "*").then(|| f.to_owned()));
            if changes.is_empty() && tag_all.is_none() {
                return Err("no policy change given (--automate, --lock, --tag, ...)".into());
            }
            policy(&client, args.workload.workload, changes, tag_all, Some(args.cause)).await
        }
        Command::Sync => {
            let id = client.post_job("/sync", &serde_json::json!({})).await?;
            match client.wait_job(&id, JOB_TIMEOUT).await? {
                JobResult::Sync(s) if s.success => {
                    println!("Synced revision {}: {} applied, {} pruned", s.revision, s.applied.len(), s.pruned.len());
                    Ok(())
                }
                JobResult::Sync(s) => {
                    let first = s.errors.first().map(|e| e.message.clone()).unwrap_or_default();
                    Err(format!("sync of {} failed: {first}", s.revision))
                }
                other => Err(format!("unexpected job result: {other:?}")),
            }
        }
        Command::Identity => {
            let identity: Identity = client.get("/identity", &[]).await?;
            match identity.public_key {
                Some(key) => {
                    println!("{key}");
                    Ok(())
                }
                None => Err("fluxd has no deploy key configured".into()),
            }
        }
        Command::Version => {
            println!("fluxctl: {}", env!("CARGO_PKG_VERSION"));
            let server: Version = client.get("/version", &[]).await?;
            println!("fluxd: {}", server.version);
            Ok(())
        }
    }
}

/// The changes `policy` flags ask for, in a fixed order.
fn policy_changes(args: &PolicyArgs) -> Result<Vec<PolicyChange>, String> {
    let mut changes = Vec::new();
    if args.automate {
        changes.push(PolicyChange::Automate);
    }
    if args.deautomate {
        changes.push(PolicyChange::Deautomate);
    }
    if args.lock {
        changes.push(PolicyChange::Lock(Lock { message: args.cause.message.clone(), user: args.cause.user.clone() }));
    }
    if args.unlock {
        changes.push(PolicyChange::Unlock);
    }
    for tag in &args.tag {
        let (container, filter) =
            tag.split_once('=').ok_or_else(|| format!("--tag {tag}: expected CONTAINER=FILTER"))?;
        changes.push(if filter == "*" {
            PolicyChange::ClearTagFilter { container: container.to_owned() }
        } else {
            let filter = TagFilter::new(filter).map_err(|e| format!("--tag {tag}: {e}"))?;
            PolicyChange::SetTagFilter { container: container.to_owned(), filter }
        });
    }
    Ok(changes)
}

async fn policy(
    client: &Client,
    workload: ResourceId,
    changes: Vec<PolicyChange>,
    tag_all: Option<Option<String>>,
    cause: Option<CauseArgs>,
) -> Result<(), String> {
    let (user, message) = cause.map(|c| (c.user, c.message)).unwrap_or_default();
    let request = PolicyRequest { workload, changes, tag_all, user, message };
    let id = client.post_job("/policies", &request).await?;
    match client.wait_job(&id, JOB_TIMEOUT).await? {
        JobResult::Policy { revision: Some(rev), .. } => {
            println!("Commit pushed: {}", &rev[..rev.len().min(7)]);
            Ok(())
        }
        JobResult::Policy { revision: None, .. } => {
            println!("Nothing to change: the policies are already so");
            Ok(())
        }
        other => Err(format!("unexpected job result: {other:?}")),
    }
}

async fn release(client: &Client, args: ReleaseArgs) -> Result<(), String> {
    let spec = ReleaseSpec {
        workloads: if args.all { WorkloadSelector::All } else { WorkloadSelector::Only(args.workloads.clone()) },
        excludes: args.exclude.clone(),
        image: match &args.update_image {
            Some(image) => ImageSelector::Image(image.clone()),
            None => ImageSelector::AllLatest,
        },
        dry_run: args.dry_run,
        force: args.force,
        cause: ChangeCause { user: args.cause.user.clone(), message: args.cause.message.clone() },
        job: None,
    };
    let id = client.post_job("/release", &spec).await?;
    eprintln!("Submitting release job {id} ...");
    let JobResult::Release(result) = client.wait_job(&id, JOB_TIMEOUT).await? else {
        return Err("unexpected job result".into());
    };
    print!("{}", table::release(&result));
    let refused: Vec<String> = result
        .workloads
        .iter()
        .filter_map(|w| match &w.outcome {
            flux_core::automation::WorkloadOutcome::Skipped { reason } if reason.contains("locked") => {
                Some(w.workload.to_string())
            }
            _ => None,
        })
        .collect();
    if !refused.is_empty() && !args.force {
        return Err(format!("{} locked: use --force to release to it anyway", refused.join(", ")));
    }
    if let Some(rev) = &result.revision {
        println!("Commit pushed: {}", rev.short());
        if args.watch {
            watch::rollout(client, &result, JOB_TIMEOUT).await?;
        }
    }
    Ok(())
}
