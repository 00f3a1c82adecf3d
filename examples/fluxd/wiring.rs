//! Builds the adapters and engines from the flags: flux-git, flux-registry, flux-k8s, and
//! flux-core's sync and automation engines over them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use flux_core::automation::{AutomationConfig, AutomationEngine, ImageScope, ManifestPolicyStore};
use flux_core::generate::Generator;
use flux_core::manifest::ManifestOptions;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine};
use flux_core::{Author, Cluster, Registry, Source, SyncIdentity};
use flux_generate::{GenerateConfig, RepoGenerator};
use flux_git::{Credentials, GitConfig, GitSource, HostKeyCheck, Signing, TrustedKeys};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};

use crate::flags::{Flags, VerifyMode, split_list};
use crate::metrics::{MeteredRegistry, Metrics};

/// The ports and engines of one daemon.
pub(crate) struct Parts {
    /// The git repository.
    pub source: Arc<dyn Source>,
    /// The registries (metered).
    pub registry: Arc<dyn Registry>,
    /// The registry adapter itself, for its request count.
    pub oci: Arc<OciRegistry>,
    /// The cluster.
    pub cluster: Arc<dyn Cluster>,
    /// git → cluster.
    pub sync: Arc<SyncEngine>,
    /// registry → git (its config is the template of per-user engines).
    pub automation: Arc<AutomationEngine>,
    /// The workloads' policies, as annotations in git.
    pub policies: Arc<ManifestPolicyStore>,
    /// Manifests, Kustomize apps and `.flux.yaml` paths: what sync and automation both see.
    pub generator: Arc<dyn Generator>,
    /// The deploy key's public half, if there is one.
    pub public_key: Option<String>,
    /// The local mirror directory, kept alive as long as the parts.
    _mirror: Option<tempfile::TempDir>,
}

impl Parts {
    /// An automation engine writing as `user` when `--git-set-author` asks for it.
    pub(crate) fn automation_as(&self, user: Option<&str>, set_author: bool) -> Arc<AutomationEngine> {
        match user.filter(|_| set_author) {
            Some(user) => {
                let mut config = self.automation.config().clone();
                config.author = Author::new(user, config.author.email.clone());
                let engine = AutomationEngine::new(self.source.clone(), self.registry.clone(), config);
                Arc::new(engine.with_generator(self.generator.clone()))
            }
            None => self.automation.clone(),
        }
    }

    /// A policy store writing as `user` when `--git-set-author` asks for it.
    pub(crate) fn policies_as(&self, user: Option<&str>, set_author: bool) -> Arc<ManifestPolicyStore> {
        match user.filter(|_| set_author) {
            Some(user) => {
                let mut config = self.automation.config().clone();
                config.author = Author::new(user, config.author.email.clone());
                Arc::new(ManifestPolicyStore::new(self.source.clone(), config).with_generator(self.generator.clone()))
            }
            None => self.policies.clone(),
        }
    }
}

/// How manifests are generated: plain files and Kustomize apps, `.flux.yaml` with
/// --manifest-generation, every command bounded by --sync-timeout.
pub(crate) fn generate_config(flags: &Flags, automation: &AutomationConfig) -> GenerateConfig {
    GenerateConfig {
        manifest_options: automation.manifest_options.clone(),
        manifest_generation: flags.manifest_generation,
        timeout: flags.sync_timeout,
        kustomize_command: flags.kustomize_command.as_ref().map(|c| c.split_whitespace().map(str::to_owned).collect()),
        ..GenerateConfig::default()
    }
}

/// The git configuration the flags describe.
pub(crate) fn git_config(flags: &Flags, mirror: PathBuf) -> GitConfig {
    let mut config = GitConfig::new(flags.git_url.clone(), flags.git_branch.clone())
        .with_sync_tag(flags.git_sync_tag.clone())
        .with_local_dir(mirror);
    if let Some(key) = &flags.git_deploy_key {
        config = config.with_credentials(Credentials::SshKey { private_key: key.clone() });
    }
    if let Some(known) = &flags.git_known_hosts {
        config = config.with_host_key_check(HostKeyCheck::KnownHostsFile(known.clone()));
    }
    // A dry run must not push anything, not even the sync marker.
    if flags.git_readonly || flags.dry_run {
        config = config.read_only();
    }
    if flags.git_ci_skip {
        config = config.with_skip_ci();
    }
    if let Some(key) = &flags.git_signing_key {
        config = config.with_signing(Signing::Gpg { key_id: key.clone(), gnupg_home: None });
    }
    let verify = match flags.git_verify_signatures_mode {
        VerifyMode::None => flux_git::VerifyMode::None,
        VerifyMode::Head => flux_git::VerifyMode::Head,
        VerifyMode::All => flux_git::VerifyMode::AllFirstParent,
    };
    config.with_verification(verify, TrustedKeys::default())
}

/// The registry configuration the flags describe.
pub(crate) fn registry_config(flags: &Flags) -> RegistryConfig {
    RegistryConfig {
        insecure_hosts: flags.registry_insecure_host.clone(),
        rps: flags.registry_rps,
        burst: flags.registry_burst,
        cache_dir: flags.registry_cache_dir.clone(),
        docker_config: flags.docker_config.clone().map_or(DockerConfig::Default, DockerConfig::File),
        include_images: split_list(&flags.registry_include_image),
        exclude_images: split_list(&flags.registry_exclude_image),
        ..RegistryConfig::default()
    }
}

/// The sync unit the flags describe.
pub(crate) fn sync_config(flags: &Flags) -> flux_core::Result<SyncConfig> {
    let mut config = SyncConfig::new(SyncIdentity::new(sync_identity(flags))?, flags.paths());
    config.garbage_collection = if flags.sync_garbage_collection {
        GarbageCollection::On
    } else if flags.sync_garbage_collection_dry {
        GarbageCollection::DryRun
    } else {
        GarbageCollection::Off
    };
    let namespaces = split_list(&flags.k8s_allow_namespace);
    if !namespaces.is_empty() {
        config.allowed_namespaces = Some(namespaces.into_iter().collect::<BTreeSet<_>>());
    }
    config.denied_kinds = split_list(&flags.k8s_unsafe_exclude_resource);
    config.move_marker = !flags.git_readonly && !flags.dry_run;
    Ok(config)
}

/// The identity marked on every object applied: stable for one repository and branch, and a
/// valid label value (Flux v1 derived it from the repository too).
fn sync_identity(flags: &Flags) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}#{}", flags.git_url, flags.git_branch).as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("flux-{hex}")
}

/// The automation settings the flags describe.
pub(crate) fn automation_config(flags: &Flags) -> AutomationConfig {
    let mut manifest_options = ManifestOptions::default();
    if let Some(ns) = &flags.k8s_default_namespace {
        manifest_options.default_namespace = ns.clone();
    }
    AutomationConfig {
        paths: flags.paths(),
        manifest_options,
        author: Author::new(flags.git_user.clone(), flags.git_email.clone()),
        ci_skip: flags.git_ci_skip,
        scope: ImageScope {
            include: split_list(&flags.registry_include_image),
            exclude: split_list(&flags.registry_exclude_image),
        },
        ..AutomationConfig::default()
    }
}

async fn connect_cluster(flags: &Flags) -> flux_core::Result<KubeCluster> {
    let mut options = ClusterOptions::default();
    let namespaces = split_list(&flags.k8s_allow_namespace);
    if !namespaces.is_empty() {
        options = options.restricted_to(namespaces);
    }
    match &flags.kubeconfig {
        Some(path) => KubeCluster::from_kubeconfig(path, options).await,
        None => KubeCluster::infer(options).await,
    }
}

/// The public key next to a deploy key (`key.pub`), if there is one.
fn public_key(flags: &Flags) -> Option<String> {
    let key = flags.git_deploy_key.as_ref()?;
    let mut public = key.clone().into_os_string();
    public.push(".pub");
    std::fs::read_to_string(public).ok().map(|s| s.trim().to_owned())
}

/// Opens every adapter and builds the engines.
pub(crate) async fn build(flags: &Flags, metrics: &Metrics) -> flux_core::Result<Parts> {
    let (mirror_dir, mirror) = match &flags.git_mirror_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("fluxd-git-")
                .tempdir()
                .map_err(|e| flux_core::Error::other(format!("cannot create the git mirror directory: {e}")))?;
            (dir.path().join("mirror"), Some(dir))
        }
    };
    let git = GitSource::open(git_config(flags, mirror_dir))?;
    let source: Arc<dyn Source> = Arc::new(git);
    let oci = Arc::new(OciRegistry::new(registry_config(flags))?);
    let registry: Arc<dyn Registry> = Arc::new(MeteredRegistry::new(oci.clone(), metrics.clone()));
    let cluster: Arc<dyn Cluster> = Arc::new(connect_cluster(flags).await?);
    let automation_config = automation_config(flags);
    let generator: Arc<dyn Generator> = Arc::new(RepoGenerator::new(generate_config(flags, &automation_config)));
    let sync = Arc::new(SyncEngine::new(source.clone(), cluster.clone(), generator.clone(), sync_config(flags)?));
    let automation = AutomationEngine::new(source.clone(), registry.clone(), automation_config.clone());
    let automation = Arc::new(automation.with_generator(generator.clone()));
    let policies =
        Arc::new(ManifestPolicyStore::new(source.clone(), automation_config).with_generator(generator.clone()));
    Ok(Parts {
        source,
        registry,
        oci,
        cluster,
        sync,
        automation,
        policies,
        generator,
        public_key: public_key(flags),
        _mirror: mirror,
    })
}
