//! Builds the units from the flags (or the config file's entries): flux-git, flux-registry and
//! flux-k8s adapters under flux-daemon's [`SyncUnit`]s. Units on the same repository and branch
//! share one source (one mirror); the first of them moves the sync marker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use flux_core::automation::{AutomationConfig, ImageScope};
use flux_core::generate::Generator;
use flux_core::manifest::ManifestOptions;
use flux_core::sync::{GarbageCollection, SyncConfig, flux_v1_sync_set_name};
use flux_core::{Author, Cluster, Registry, Source, SyncIdentity, WorkloadRegistries};
use flux_daemon::{Intervals, MeteredRegistry, Metrics, SyncUnit};
use flux_generate::{GenerateConfig, RepoGenerator};
use flux_git::{Credentials, GitConfig, GitSource, GnupgHome, HostKeyCheck, Signing, TrustedKeys};
use flux_k8s::{ClusterOptions, KubeCluster, KubeSecret};
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};

use crate::deploy_key::{KeyRingConfig, SERVICE_ACCOUNT_NAMESPACE, SecretKeyRing, is_ssh_url};
use crate::flags::{Flags, SyncState, UnitFlags, VerifyMode, split_list};
use crate::pull_secrets::PullSecrets;
use crate::sync_state::{SYNC_MARKER_ANNOTATION, SecretMarker};

/// How manifests are generated: plain files and Kustomize apps, `.flux.yaml` with
/// --manifest-generation, every command bounded by --sync-timeout; SOPS files decrypted with --sops;
/// git-secret files revealed with --git-secret, with the keys in `gnupg_home` when given.
pub(crate) fn generate_config(
    flags: &UnitFlags,
    automation: &AutomationConfig,
    gnupg_home: Option<&std::path::Path>,
) -> GenerateConfig {
    let git_secret = flags.git_secret.then(|| {
        let reveal = flux_generate::GitSecret::new(without_password(flags.git_url.as_deref().unwrap_or_default()));
        match gnupg_home {
            Some(home) => reveal.with_gnupg_home(home),
            None => reveal,
        }
    });
    GenerateConfig {
        git_secret,
        manifest_options: automation.manifest_options.clone(),
        manifest_generation: flags.manifest_generation,
        timeout: flags.sync_timeout,
        kustomize_command: flags.kustomize_command.as_ref().map(|c| c.split_whitespace().map(str::to_owned).collect()),
        sops: flags.sops.then(flux_generate::Sops::from_env),
        ..GenerateConfig::default()
    }
}

/// `url` without the password of its user part (`https://user:token@host/…` → `https://user@host/…`),
/// to name the repository in errors.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = userinfo.split(':').next().unwrap_or_default();
    let path = path.map(|p| format!("/{p}")).unwrap_or_default();
    format!("{scheme}://{user}@{host}{path}")
}

/// The private GnuPG home of a unit's `--git-gpg-key-import` keys, if it names any.
pub(crate) fn import_gpg_keys(flags: &UnitFlags) -> flux_core::Result<Option<GnupgHome>> {
    let paths: Vec<PathBuf> = flags
        .git_gpg_key_import
        .iter()
        .flat_map(|p| p.to_string_lossy().split(',').map(str::trim).map(PathBuf::from).collect::<Vec<_>>())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if paths.is_empty() {
        return Ok(None);
    }
    let trust = flags.verify_mode() != VerifyMode::None;
    let (home, files) = GnupgHome::import(&paths, trust)?;
    tracing::info!(files = ?files, "imported GPG keys into a private GNUPGHOME");
    Ok(Some(home))
}

/// The git configuration the flags describe; `gnupg_home` holds the imported keys.
pub(crate) fn git_config(
    flags: &UnitFlags,
    mirror: PathBuf,
    dry_run: bool,
    gnupg_home: Option<&std::path::Path>,
) -> GitConfig {
    let url = flags.git_url.clone().unwrap_or_default();
    let mut config = GitConfig::new(url, flags.git_branch.clone())
        .with_sync_tag(flags.sync_tag().to_owned())
        .with_local_dir(mirror)
        .with_timeout(flags.git_timeout)
        .with_identity(Author::new(flags.git_user.clone(), flags.git_email.clone()));
    // --git-label overrides the notes ref too (Flux v1).
    let notes_ref = flags.git_label.as_ref().unwrap_or(&flags.git_notes_ref);
    if !notes_ref.is_empty() {
        config = config.with_notes_ref(notes_ref.clone());
    }
    if let Some(key) = &flags.git_deploy_key {
        config = config.with_credentials(Credentials::SshKey { private_key: key.clone() });
    }
    if let Some(known) = &flags.git_known_hosts {
        config = config.with_host_key_check(HostKeyCheck::KnownHostsFile(known.clone()));
    }
    // A dry run must not push anything, not even the sync marker.
    if flags.git_readonly || dry_run {
        config = config.read_only();
    }
    // Flux v1: the message when given, else `[ci skip]` with --git-ci-skip.
    if !flags.git_ci_skip_message.trim().is_empty() {
        config = config.with_ci_skip_message(flags.git_ci_skip_message.clone());
    } else if flags.git_ci_skip {
        config = config.with_skip_ci();
    }
    let gnupg_home = gnupg_home.map(std::path::Path::to_path_buf);
    if let Some(key) = &flags.git_signing_key {
        config = config.with_signing(Signing::Gpg { key_id: key.clone(), gnupg_home: gnupg_home.clone() });
    }
    let verify = match flags.verify_mode() {
        VerifyMode::None => flux_git::VerifyMode::None,
        VerifyMode::Head => flux_git::VerifyMode::Head,
        VerifyMode::FirstParent => flux_git::VerifyMode::AllFirstParent,
        VerifyMode::All => flux_git::VerifyMode::All,
    };
    config.with_verification(verify, TrustedKeys { gnupg_home, ..TrustedKeys::default() })
}

/// The registry configuration the flags describe.
pub(crate) fn registry_config(flags: &Flags) -> RegistryConfig {
    let scopes = |pick: fn(&UnitFlags) -> &Vec<String>| split_list(pick(&flags.unit));
    RegistryConfig {
        insecure_hosts: flags.registry_insecure_host.clone(),
        rps: flags.registry_rps,
        burst: flags.registry_burst,
        cache_dir: flags.registry_cache_dir.clone(),
        docker_config: flags.docker_config.clone().map_or(DockerConfig::Default, DockerConfig::File),
        include_images: scopes(|u| &u.registry_include_image),
        exclude_images: scopes(|u| &u.registry_exclude_image),
        use_labels: split_list(&flags.registry_use_labels),
        ..RegistryConfig::default()
    }
}

/// How often automation runs: --automation-interval, or Flux v1's deprecated
/// --registry-poll-interval when --automation-interval is left at its default (v1 copied it
/// over when only the old flag was given; flux-rs cannot tell an explicit `5m` from the default).
pub(crate) fn automation_interval(flags: &UnitFlags) -> std::time::Duration {
    const DEFAULT: std::time::Duration = std::time::Duration::from_secs(300);
    match flags.registry_poll_interval {
        Some(poll) if !poll.is_zero() && flags.automation_interval == DEFAULT => poll,
        _ => flags.automation_interval,
    }
}

/// The sync settings of a unit, marked with `identity`.
pub(crate) fn sync_config(flags: &UnitFlags, identity: &str, dry_run: bool) -> flux_core::Result<SyncConfig> {
    let mut config = SyncConfig::new(SyncIdentity::new(identity)?, flags.paths());
    // Flux v1: --sync-garbage-collection-dry implies garbage collection, as a dry run.
    config.garbage_collection = if flags.sync_garbage_collection_dry {
        GarbageCollection::DryRun
    } else if flags.sync_garbage_collection {
        GarbageCollection::On
    } else {
        GarbageCollection::Off
    };
    let namespaces = flags.allowed_namespaces();
    if !namespaces.is_empty() {
        config.allowed_namespaces = Some(namespaces.into_iter().collect::<BTreeSet<_>>());
        // Flux v1: cluster-scoped objects are still synced, but a Namespace only when listed.
        config.allow_cluster_scoped = true;
    }
    config.denied_kinds = split_list(&flags.k8s_unsafe_exclude_resource);
    config.move_marker = !flags.git_readonly && !dry_run;
    // Objects Flux v1 applied from this repository, branch and paths are this unit's.
    let url = flags.git_url.as_deref().unwrap_or_default();
    config.legacy_sync_sets = vec![flux_v1_sync_set_name(url, &flags.git_branch, &flags.paths())];
    config.prune_removed_paths = flags.sync_garbage_collection_removed_paths;
    config.prune_guard = flags
        .sync_prune_guard
        .0
        .map(|max_percent| flux_core::sync::PruneGuard { max_percent, ..flux_core::sync::PruneGuard::default() });
    Ok(config)
}

/// The identity marked on every object a unit applies: a valid label value, stable for one
/// repository and branch (Flux v1 derived it from the repository too) and, for the units of a
/// config file (`unit: Some(name)`), distinct per unit name, so that units sharing a repository
/// never prune each other's objects.
pub(crate) fn sync_identity(flags: &UnitFlags, unit: Option<&str>) -> String {
    use sha2::Digest;
    let url = flags.git_url.as_deref().unwrap_or_default();
    let mut key = format!("{url}#{}", flags.git_branch);
    if let Some(name) = unit {
        key.push('#');
        key.push_str(name);
    }
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("flux-{hex}")
}

/// The automation settings the flags describe.
pub(crate) fn automation_config(flags: &UnitFlags) -> AutomationConfig {
    let mut manifest_options = ManifestOptions::default();
    if let Some(ns) = &flags.k8s_default_namespace {
        manifest_options.default_namespace = ns.clone();
    }
    AutomationConfig {
        paths: flags.paths(),
        manifest_options,
        author: Author::new(flags.git_user.clone(), flags.git_email.clone()),
        // flux-git writes the ci-skip text (--git-ci-skip, --git-ci-skip-message).
        ci_skip: false,
        scope: ImageScope {
            include: split_list(&flags.registry_include_image),
            exclude: split_list(&flags.registry_exclude_image),
        },
        ..AutomationConfig::default()
    }
}

/// A unit's cluster handle: the first unit connects; the others share its client and discovery
/// (one connection pool per process: 1,000 units each with its own held about 0.5 MiB apiece in
/// connections and TLS buffers), each with its own options and records.
async fn connect_cluster(
    flags: &Flags,
    unit: &UnitFlags,
    first: &mut Option<KubeCluster>,
) -> flux_core::Result<KubeCluster> {
    let mut options =
        ClusterOptions { discovery_cache_dir: flags.k8s_discovery_cache_dir.clone(), ..ClusterOptions::default() };
    let namespaces = unit.allowed_namespaces();
    if !namespaces.is_empty() {
        options = options.restricted_to(namespaces);
    }
    if let Some(first) = first {
        return Ok(first.sibling(options));
    }
    let cluster = match &flags.kubeconfig {
        Some(path) => KubeCluster::from_kubeconfig(path, options).await?,
        None => KubeCluster::infer(options).await?,
    };
    *first = Some(cluster.clone());
    Ok(cluster)
}

/// The public half of --git-deploy-key: the file next to it (`key.pub`), else derived from the
/// private key (`ssh-keygen -y`).
async fn public_key(flags: &UnitFlags) -> Option<String> {
    let key = flags.git_deploy_key.as_ref()?;
    let mut public = key.clone().into_os_string();
    public.push(".pub");
    if let Ok(text) = std::fs::read_to_string(public) {
        return Some(text.trim().to_owned());
    }
    match crate::deploy_key::public_key_of(key).await {
        Ok(public) => Some(public),
        Err(e) => {
            tracing::warn!(key = %key.display(), error = %e, "cannot derive the deploy key's public half");
            None
        }
    }
}

/// Whether a unit's deploy key comes from the deploy-key Secret: no --git-deploy-key, an ssh
/// URL, and either running in a Pod (Flux v1's condition) or --k8s-secret-volume-mount-path given.
fn uses_key_secret(flags: &UnitFlags) -> bool {
    let in_cluster = std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE).is_file();
    flags.git_deploy_key.is_none()
        && flags.git_url.as_deref().is_some_and(is_ssh_url)
        && (in_cluster || flags.k8s_secret_volume_mount_path.is_some())
}

/// The deploy-key Secret (--k8s-secret-name) in the service account's namespace (Flux v1's), else
/// in the kubeconfig context's.
fn deploy_key_secret(kube: &KubeCluster, unit: &UnitFlags) -> KubeSecret {
    let namespace = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok().map(|n| n.trim().to_owned());
    KubeSecret::new(kube, namespace.as_deref().filter(|n| !n.is_empty()), &unit.k8s_secret_name)
}

/// Where a unit's sync marker goes with --sync-state=secret (or --git-readonly, which forces
/// it): the deploy-key Secret, which must exist when `secret` was asked for. Forced by
/// --git-readonly alone and absent, no marker is kept (as before flux-rs had the store).
async fn marker_secret(kube: &KubeCluster, unit: &UnitFlags) -> flux_core::Result<Option<KubeSecret>> {
    if unit.sync_state() != SyncState::Secret {
        return Ok(None);
    }
    let secret = deploy_key_secret(kube, unit);
    match secret.annotation(SYNC_MARKER_ANNOTATION).await {
        Ok(_) => Ok(Some(secret)),
        Err(flux_core::Error::NotFound { .. }) if unit.sync_state != SyncState::Secret => {
            tracing::warn!(
                secret = %format!("{}/{}", secret.namespace(), secret.name()),
                "--git-readonly: no deploy-key Secret to keep the sync marker in; none is kept"
            );
            Ok(None)
        }
        Err(flux_core::Error::NotFound { .. }) => Err(flux_core::Error::not_found(format!(
            "the Secret {}/{} of --sync-state=secret (--k8s-secret-name)",
            secret.namespace(),
            secret.name()
        ))),
        Err(e) => Err(e),
    }
}

/// The deploy-key Secret's key ring of a unit, when it uses one (`uses_key_secret`): the Secret
/// in the service account's namespace (else the kubeconfig context's), keys in --ssh-keygen-dir
/// (default: `fluxd-keygen` next to the mirrors; a unit of a config file in its own directory).
async fn open_key_ring(
    flags: &Flags,
    unit: &UnitFlags,
    kube: &KubeCluster,
    mirrors: &std::path::Path,
    name: Option<&str>,
) -> flux_core::Result<Option<SecretKeyRing>> {
    if !uses_key_secret(unit) {
        return Ok(None);
    }
    let secret = deploy_key_secret(kube, unit);
    let base = unit
        .ssh_keygen_dir
        .clone()
        .unwrap_or_else(|| mirrors.parent().map_or_else(|| PathBuf::from("fluxd-keygen"), |p| p.join("fluxd-keygen")));
    let config = KeyRingConfig {
        mount: unit.secret_mount_path(),
        data_key: unit.k8s_secret_data_key.clone(),
        keygen_dir: name.map_or_else(|| base.clone(), |n| base.join(n)),
        key_type: unit.ssh_keygen_type.clone(),
        bits: unit.ssh_keygen_bits,
        format: unit.ssh_keygen_format.clone(),
        generate: !flags.dry_run,
    };
    SecretKeyRing::open(config, secret).await.map(Some)
}

/// One unit to build: its name (`None`: the flags' one unit, named [`crate::DEFAULT_UNIT`]) and
/// its flags.
pub(crate) struct UnitRequest {
    /// The name from the config file.
    pub name: Option<String>,
    /// Its flags.
    pub flags: UnitFlags,
}

/// The units, and what they share.
pub(crate) struct Built {
    /// The units, in order.
    pub units: Vec<SyncUnit>,
    /// The registry adapter, for its request count.
    pub oci: Arc<OciRegistry>,
    /// The temporary directory of mirrors and state, when none was given.
    pub temp: Option<Arc<tempfile::TempDir>>,
    /// Where the state (job journals) goes.
    pub state_dir: PathBuf,
}

/// Opens every adapter and builds the units.
pub(crate) async fn build(flags: &Flags, requests: Vec<UnitRequest>, metrics: &Metrics) -> flux_core::Result<Built> {
    if flags.dry_run_branch.is_some() && !flags.dry_run {
        return Err(flux_core::Error::invalid(
            flux_core::Location::file("--dry-run-branch"),
            "--dry-run-branch plans another branch: it needs --dry-run",
        ));
    }
    let temp = match &flags.git_mirror_dir {
        Some(_) => None,
        None => Some(Arc::new(
            tempfile::Builder::new()
                .prefix("fluxd-git-")
                .tempdir()
                .map_err(|e| flux_core::Error::other(format!("cannot create the git mirror directory: {e}")))?,
        )),
    };
    let base =
        flags.git_mirror_dir.clone().or_else(|| temp.as_ref().map(|t| t.path().join("mirror"))).unwrap_or_default();
    let state_dir = match &flags.state_dir {
        Some(dir) => dir.clone(),
        None => base.parent().map_or_else(|| PathBuf::from("fluxd-state"), |p| p.join("fluxd-state")),
    };
    let oci = Arc::new(OciRegistry::new(registry_config(flags))?);
    // --ha-namespace: every unit written for only while this replica holds its Lease.
    let ha = crate::ha::coordinator(flags).await?;
    let registry: Arc<dyn Registry> = Arc::new(MeteredRegistry::new(oci.clone(), metrics.clone()));
    let mut sources: BTreeMap<(String, String), Arc<dyn Source>> = BTreeMap::new();
    // Each source's private GnuPG home lives as long as the units using it.
    let mut gnupg_homes: BTreeMap<(String, String), Arc<GnupgHome>> = BTreeMap::new();
    // The deploy-key Secret's key ring of each source that uses one.
    let mut key_rings: BTreeMap<(String, String), Arc<SecretKeyRing>> = BTreeMap::new();
    // The sources whose sync marker is in the deploy-key Secret.
    let mut marker_in_secret: BTreeSet<(String, String)> = BTreeSet::new();
    let mut units = Vec::new();
    let mut first_cluster = None;
    for request in requests {
        let unit_flags = &request.flags;
        let url = unit_flags.url().map_err(flux_core::Error::other)?.to_owned();
        let key = (url, unit_flags.git_branch.clone());
        let source_key = key.clone();
        let shared = sources.contains_key(&key);
        let kube = Arc::new(connect_cluster(flags, unit_flags, &mut first_cluster).await?);
        if !shared && let Some(ring) = open_key_ring(flags, unit_flags, &kube, &base, request.name.as_deref()).await? {
            key_rings.insert(key.clone(), Arc::new(ring));
        }
        let source = match sources.get(&key) {
            Some(source) => source.clone(),
            None => {
                // The one-unit form keeps its mirror where --git-mirror-dir says; the units of a
                // config file each get a directory in it, named after the first unit using it.
                let mirror = match &request.name {
                    Some(name) => base.join(name),
                    None => base.clone(),
                };
                let gnupg = import_gpg_keys(unit_flags)?.map(Arc::new);
                // --dry-run-branch: the source reads that branch; the identity stays --git-branch's.
                let mut planned = unit_flags.clone();
                if let Some(branch) = &flags.dry_run_branch {
                    planned.git_branch = branch.clone();
                }
                let mut config = git_config(&planned, mirror, flags.dry_run, gnupg.as_ref().map(|h| h.path()));
                if let Some(ring) = key_rings.get(&key) {
                    config = config.with_credentials(Credentials::SshKey { private_key: ring.key_path() });
                }
                let mut source: Arc<dyn Source> = Arc::new(GitSource::open(config)?);
                if let Some(secret) = marker_secret(&kube, unit_flags).await? {
                    tracing::info!(secret = %format!("{}/{}", secret.namespace(), secret.name()), annotation = SYNC_MARKER_ANNOTATION, "sync marker kept in the Secret");
                    source = Arc::new(SecretMarker::new(source, secret));
                    marker_in_secret.insert(key.clone());
                }
                if let Some(home) = gnupg {
                    gnupg_homes.insert(source_key.clone(), home);
                }
                sources.insert(key, source.clone());
                source
            }
        };
        let name = request.name.as_deref().unwrap_or(crate::DEFAULT_UNIT);
        tracing::info!(
            unit = name,
            branch = %unit_flags.git_branch,
            sync_tag = unit_flags.sync_tag(),
            state = ?unit_flags.sync_state(),
            verify_signatures_mode = ?unit_flags.verify_mode(),
            readonly = unit_flags.git_readonly,
            deploy_key_secret = %unit_flags.k8s_secret_name,
            deploy_key_mount = %unit_flags.secret_mount_path().display(),
            "unit"
        );
        let identity = sync_identity(unit_flags, request.name.as_deref());
        let mut sync = sync_config(unit_flags, &identity, flags.dry_run)?;
        // A marker in the Secret moves also for a read-only repository (not in a dry run).
        if marker_in_secret.contains(&source_key) {
            sync.move_marker = !flags.dry_run;
        }
        // One marker per repository and branch: the first unit on it moves it.
        sync.move_marker &= !shared;
        let cluster: Arc<dyn Cluster> = kube.clone();
        let meter = metrics.clone();
        let pull_secrets: Arc<dyn WorkloadRegistries> = Arc::new(PullSecrets::new(
            kube,
            oci.clone(),
            Arc::new(move |view| Arc::new(MeteredRegistry::new(view, meter.clone())) as Arc<dyn Registry>),
        ));
        let automation = automation_config(unit_flags);
        let generator: Arc<dyn Generator> = Arc::new(RepoGenerator::new(generate_config(
            unit_flags,
            &automation,
            gnupg_homes.get(&source_key).map(|h| h.path()),
        )));
        let intervals = Intervals {
            git_poll: unit_flags.git_poll_interval,
            sync: unit_flags.sync_interval,
            automation: automation_interval(unit_flags),
        };
        let mut unit = SyncUnit::new(name, source, cluster, registry.clone(), generator, sync)?
            .with_automation(automation)
            .with_intervals(intervals)
            .with_branch(unit_flags.git_branch.clone())
            .with_workload_registries(pull_secrets)
            .with_set_author(unit_flags.git_set_author);
        if let Some(key) = public_key(unit_flags).await {
            unit = unit.with_public_key(key);
        }
        if let Some(ring) = key_rings.get(&source_key) {
            unit = unit.with_deploy_key(ring.clone());
        }
        if unit_flags.wait {
            unit = unit.with_wait(unit_flags.timeout);
        }
        unit = unit.with_depends_on(split_list(&unit_flags.depends_on));
        if !unit_flags.health_check.is_empty() {
            unit = unit.with_health_checks(unit_flags.health_check.clone(), unit_flags.timeout);
        }
        if unit_flags.registry_disable_scanning {
            unit = unit.without_scanning();
        }
        if let Some(temp) = &temp {
            unit = unit.keep_alive(temp.clone());
        }
        if let Some(home) = gnupg_homes.get(&source_key) {
            unit = unit.keep_alive(home.clone());
        }
        if let Some(ha) = &ha {
            unit = unit.with_ownership(ha.clone());
        }
        units.push(unit);
    }
    // High availability: the replicas share each deploy-key Secret; one regenerated through
    // one replica is put in use by the others.
    if ha.is_some() {
        key_rings.values().for_each(SecretKeyRing::follow_in_background);
    }
    Ok(Built { units, oci, temp, state_dir })
}
