//! `fluxctl install`: the manifests that run fluxd in a cluster, with Flux v1's flags and
//! defaults (`cmd/fluxctl/install_cmd.go`, `pkg/install/templates`).
//!
//! The output is a Namespace, a ServiceAccount, its RBAC (cluster-wide, or with `--namespaced` a
//! Role and RoleBinding in each listed namespace and nothing cluster-wide), the deploy-key Secret
//! (empty, as in Flux v1: the user puts the key in it), the API-token Secret, the Deployment, the
//! Service, and the RBAC of the Leases its replicas share units through (`--replicas` above 1
//! runs them with `--ha-namespace`: high availability). It is a YAML stream on stdout,
//! or with `-o DIR` one file per object plus a `kustomization.yaml` listing them. The `deploy/`
//! folder of the repository is this command's output with the arguments its test names
//! (`tests::DEPLOY_ARGS`).

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

/// The image run when `--image` is not given: what `scripts/build-image --push` names it for a
/// local registry (there is no published image).
pub(crate) const DEFAULT_IMAGE: &str = concat!("localhost:5000/flux-rs:", env!("CARGO_PKG_VERSION"));

/// The user (and group) the image runs as; the security context names it too.
const RUN_AS: u32 = 10001;

/// fluxd's API port and metrics port in the pod.
const API_PORT: u16 = 3030;
const METRICS_PORT: u16 = 3031;

/// Where the deploy-key Secret is mounted (Flux v1's place).
const DEPLOY_KEY_DIR: &str = "/etc/fluxd/ssh";

/// Print the Kubernetes manifests that install fluxd in a cluster.
///
/// `fluxctl install --git-url=git@github.com:org/fleet --git-email=flux@example.com | kubectl apply -f -`
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InstallArgs {
    /// The repository fluxd syncs, e.g. git@github.com:org/fleet.
    #[arg(long)]
    pub git_url: Option<String>,
    /// The branch fluxd syncs and commits to.
    #[arg(long, default_value = "master")]
    pub git_branch: String,
    /// Paths in the repository holding manifests (repeatable, comma-separated).
    #[arg(long = "git-path", visible_alias = "git-paths", value_delimiter = ',')]
    pub git_paths: Vec<String>,
    /// The git tag keeping track of fluxd's sync progress (passed as fluxd's `--git-sync-tag`).
    #[arg(long, default_value = "flux")]
    pub git_label: String,
    /// The committer name of fluxd's commits.
    #[arg(long, default_value = "Flux")]
    pub git_user: String,
    /// The committer email of fluxd's commits (required).
    #[arg(long)]
    pub git_email: Option<String>,
    /// fluxd has read-only access to the repository: no commits, no sync tag.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub git_readonly: bool,
    /// Run `.flux.yaml` manifest generation.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub manifest_generation: bool,
    /// The namespace fluxd is installed in (default: the kubeconfig context's, else `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Do not scan registries: no automation, no image listing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub registry_disable_scanning: bool,
    /// Run as a non-root user with a read-only root file system (`=false` to leave it out).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = clap::ArgAction::Set)]
    pub add_security_context: bool,
    /// Write one file per object (and a kustomization.yaml) into this existing directory.
    #[arg(short = 'o', long)]
    pub output_dir: Option<std::path::PathBuf>,
    /// How many fluxd pods; above 1, they share the units, one writer per unit (high
    /// availability: fluxd's --ha-namespace, Leases in their namespace).
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Install limited to these namespaces (comma-separated): a Role and RoleBinding in each, no
    /// cluster-wide rights, and fluxd syncs only there.
    #[arg(long, value_delimiter = ',', value_name = "NS[,NS...]")]
    pub namespaced: Vec<String>,
    /// The fluxd image (build it with `scripts/build-image --push REGISTRY/NAME:TAG`).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// The API token stored in the `flux-api-token` Secret (default: a new random one; empty:
    /// the Secret is left without a token, for you to fill in).
    #[arg(long)]
    pub api_token: Option<String>,
}

/// One object of the output: the file it goes to with `-o DIR`, and its YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub file: String,
    pub yaml: String,
}

/// The settings after validation and defaults.
#[derive(Debug)]
struct Settings<'a> {
    args: &'a InstallArgs,
    git_url: &'a str,
    git_email: &'a str,
    namespace: String,
    namespaced: Vec<String>,
    token: Option<String>,
}

/// Runs `fluxctl install`: prints the stream, or writes the files into `--output-dir`.
pub(crate) fn run(args: &InstallArgs) -> Result<(), String> {
    let manifests = manifests(args)?;
    match &args.output_dir {
        None => {
            print!("{}", stream(&manifests));
            Ok(())
        }
        Some(dir) => write_dir(dir, &manifests),
    }
}

/// The objects `args` describe, in the order they must be applied.
pub(crate) fn manifests(args: &InstallArgs) -> Result<Vec<Manifest>, String> {
    let settings = settings(args)?;
    let mut docs: Vec<(String, String, Option<String>, String)> = Vec::new();
    let ns = settings.namespace.as_str();
    let mut push = |kind: &str, name: &str, namespace: Option<&str>, yaml: String| {
        docs.push((kind.to_lowercase(), name.to_owned(), namespace.map(str::to_owned), yaml));
    };
    push("Namespace", ns, None, namespace_yaml(ns));
    for extra in settings.namespaced.iter().filter(|n| n.as_str() != ns) {
        push("Namespace", extra, None, namespace_yaml(extra));
    }
    push("ServiceAccount", "flux", Some(ns), service_account_yaml(ns));
    if settings.namespaced.is_empty() {
        push("ClusterRole", "flux", None, CLUSTER_ROLE.to_owned());
        push("ClusterRoleBinding", "flux", None, cluster_role_binding_yaml(ns));
    } else {
        for target in &settings.namespaced {
            push("Role", "flux", Some(target), role_yaml("flux", target, ALL_RULES, "everything in this namespace"));
            push("RoleBinding", "flux", Some(target), role_binding_yaml("flux", target, ns));
        }
    }
    // Always there, so that scaling the Deployment out (with --ha-namespace) needs no new RBAC.
    push(
        "Role",
        "flux-leases",
        Some(ns),
        role_yaml("flux-leases", ns, LEASE_RULES, "the Leases its replicas share units through"),
    );
    push("RoleBinding", "flux-leases", Some(ns), role_binding_yaml("flux-leases", ns, ns));
    push("Secret", "flux-git-deploy", Some(ns), deploy_key_secret_yaml(ns));
    push("Secret", "flux-api-token", Some(ns), api_token_secret_yaml(ns, settings.token.as_deref()));
    push("Deployment", "flux", Some(ns), deployment_yaml(&settings));
    push("Service", "flux", Some(ns), service_yaml(ns));
    let manifests = docs
        .into_iter()
        .enumerate()
        .map(|(i, (kind, name, namespace, yaml))| {
            let place = match namespace {
                Some(other) if other != ns => format!(".{other}"),
                _ => String::new(),
            };
            Manifest { file: format!("{:02}-{kind}-{name}{place}.yaml", i + 1), yaml }
        })
        .collect();
    Ok(manifests)
}

/// The manifests as one YAML stream.
pub(crate) fn stream(manifests: &[Manifest]) -> String {
    manifests.iter().map(|m| format!("---\n{}", m.yaml)).collect()
}

/// The `kustomization.yaml` listing `manifests` in order.
pub(crate) fn kustomization(manifests: &[Manifest]) -> String {
    let mut out = String::from(
        "# Generated by `fluxctl install -o DIR`: the objects below, in the order they are applied.\n\
         # Change them with patches in an overlay that uses this directory as a resource.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for m in manifests {
        let _ = writeln!(out, "- {}", m.file);
    }
    out
}

/// Writes each manifest into `dir` (which must exist, as in Flux v1), and a kustomization.yaml.
pub(crate) fn write_dir(dir: &Path, manifests: &[Manifest]) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let files = manifests.iter().map(|m| (m.file.clone(), m.yaml.clone()));
    for (file, content) in files.chain([("kustomization.yaml".to_owned(), kustomization(manifests))]) {
        let path = dir.join(&file);
        eprintln!("writing {}", path.display());
        std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn settings(args: &InstallArgs) -> Result<Settings<'_>, String> {
    let git_url = args.git_url.as_deref().filter(|u| !u.trim().is_empty());
    let git_url = git_url.ok_or("please supply a valid --git-url argument")?;
    let git_email = args.git_email.as_deref().filter(|e| !e.trim().is_empty());
    let git_email = git_email.ok_or("please supply a valid --git-email argument")?;
    let namespace = match &args.namespace {
        Some(ns) => ns.clone(),
        None => kubeconfig_namespace().unwrap_or_else(|| "default".to_owned()),
    };
    check_name("--namespace", &namespace)?;
    let mut namespaced: Vec<String> = Vec::new();
    for ns in args.namespaced.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        check_name("--namespaced", ns)?;
        if !namespaced.iter().any(|n| n == ns) {
            namespaced.push(ns.to_owned());
        }
    }
    if !args.namespaced.is_empty() && namespaced.is_empty() {
        return Err("--namespaced needs at least one namespace".into());
    }
    if args.replicas == 0 {
        return Err("--replicas must be 1 or more".into());
    }
    if args.image.trim().is_empty() || args.image.chars().any(char::is_whitespace) {
        return Err(format!("--image {:?} is not an image reference", args.image));
    }
    if args.git_label.trim().is_empty() {
        return Err("--git-label must not be empty".into());
    }
    let token = match &args.api_token {
        Some(t) if t.is_empty() => None,
        Some(t) => Some(t.clone()),
        None => Some(random_token()?),
    };
    Ok(Settings { args, git_url, git_email, namespace, namespaced, token })
}

/// Namespaces are DNS labels: lower-case letters, digits and `-`, at most 63.
fn check_name(flag: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid { Ok(()) } else { Err(format!("{flag} {name:?} is not a valid namespace name")) }
}

/// The current kubeconfig context's namespace, as Flux v1's install read it.
fn kubeconfig_namespace() -> Option<String> {
    let path = match std::env::var_os("KUBECONFIG") {
        Some(list) => std::env::split_paths(&list).next()?,
        None => Path::new(&std::env::var_os("HOME")?).join(".kube").join("config"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let current = config.get("current-context")?.as_str()?;
    let context =
        config.get("contexts")?.as_array()?.iter().find(|c| c.get("name").and_then(|n| n.as_str()) == Some(current))?;
    let ns = context.get("context")?.get("namespace")?.as_str()?;
    (!ns.is_empty()).then(|| ns.to_owned())
}

/// 32 random bytes, hex.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a new API token (give one with --api-token): {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A YAML scalar that reads back as `s` whatever it holds (a JSON string is a YAML one).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

fn service_account_yaml(ns: &str) -> String {
    format!(
        "# fluxd's identity in the cluster: what the RBAC below binds to.\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: flux\n  namespace: {ns}\n  labels:\n    name: flux\n"
    )
}

const ALL_RULES: &str = "- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n";

/// What high availability's Leases need: list, create, and resourceVersion-guarded patches.
const LEASE_RULES: &str = "- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  \
                           verbs: [get, list, watch, create, update, patch, delete]\n";

const CLUSTER_ROLE: &str = "# fluxd applies, lists and deletes any kind anywhere, as Flux v1's did. For an install limited\n\
     # to some namespaces, use `fluxctl install --namespaced NS[,NS...]`.\n\
     apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: flux\n  labels:\n    name: flux\n\
     rules:\n- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n- nonResourceURLs: ['*']\n  verbs: ['*']\n";

fn cluster_role_binding_yaml(ns: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: flux\n  labels:\n    name: flux\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: flux\n\
         subjects:\n- kind: ServiceAccount\n  name: flux\n  namespace: {ns}\n"
    )
}

fn role_yaml(name: &str, ns: &str, rules: &str, what: &str) -> String {
    format!(
        "# fluxd may touch {what}.\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    name: flux\n\
         rules:\n{rules}"
    )
}

fn role_binding_yaml(name: &str, ns: &str, flux_ns: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    name: flux\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\n\
         subjects:\n- kind: ServiceAccount\n  name: flux\n  namespace: {flux_ns}\n"
    )
}

fn deploy_key_secret_yaml(ns: &str) -> String {
    format!(
        "# The ssh deploy key, empty as in Flux v1. fluxd does not generate one: put yours in it, with its\n\
         # public half for `fluxctl identity`, then restart fluxd:\n\
         #   kubectl -n {ns} create secret generic flux-git-deploy --from-file=identity=KEY \\\n\
         #     --from-file=identity.pub=KEY.pub --dry-run=client -o yaml | kubectl apply -f -\n\
         #   kubectl -n {ns} rollout restart deployment/flux\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: flux-git-deploy\n  namespace: {ns}\ntype: Opaque\n"
    )
}

fn api_token_secret_yaml(ns: &str, token: Option<&str>) -> String {
    let mut out = String::from("# The bearer token of fluxd's API (fluxctl's --token / FLUX_TOKEN).\n");
    match token {
        Some(_) => {
            let _ = writeln!(
                out,
                "#   kubectl -n {ns} get secret flux-api-token -o jsonpath='{{.data.token}}' | base64 -d"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# Left without a token: fluxd does not start until it has one. Set it with\n\
                 #   kubectl -n {ns} create secret generic flux-api-token \\\n\
                 #     --from-literal=token=$(head -c 32 /dev/urandom | base64) --dry-run=client -o yaml | kubectl apply -f -"
            );
        }
    }
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: flux-api-token\n  namespace: {ns}\ntype: Opaque\n"
    );
    if let Some(token) = token {
        let _ = write!(out, "stringData:\n  token: {}\n", q(token));
    }
    out
}

/// fluxd's arguments. Only flags fluxd has: Flux v1's `--git-label` is fluxd's `--git-sync-tag`
/// (fluxd has no `--git-label` yet), and fluxd's API and metrics listen on every address so that
/// the Service and Prometheus reach them.
fn fluxd_args(s: &Settings<'_>) -> Vec<String> {
    let a = s.args;
    let mut args = vec![format!("--git-url={}", s.git_url), format!("--git-branch={}", a.git_branch)];
    let paths: Vec<&str> = a.git_paths.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    if !paths.is_empty() {
        args.push(format!("--git-path={}", paths.join(",")));
    }
    args.push(format!("--git-sync-tag={}", a.git_label));
    args.push(format!("--git-user={}", a.git_user));
    args.push(format!("--git-email={}", s.git_email));
    args.push(format!("--git-deploy-key={DEPLOY_KEY_DIR}/identity"));
    if a.git_readonly {
        args.push("--git-readonly".into());
    }
    if a.manifest_generation {
        args.push("--manifest-generation".into());
    }
    if a.registry_disable_scanning {
        args.push("--registry-disable-scanning".into());
    }
    for ns in &s.namespaced {
        args.push(format!("--k8s-allow-namespace={ns}"));
    }
    args.push(format!("--listen=0.0.0.0:{API_PORT}"));
    args.push(format!("--listen-metrics=0.0.0.0:{METRICS_PORT}"));
    // Several replicas share the units through Leases in fluxd's namespace, each named by its
    // Pod (POD_NAME).
    if a.replicas > 1 {
        args.push(format!("--ha-namespace={}", s.namespace));
    }
    args
}

fn deployment_yaml(s: &Settings<'_>) -> String {
    let a = s.args;
    let ns = &s.namespace;
    let mut out = String::from(
        "# fluxd. Its flags are fluxd's own (`fluxd --help`); Flux v1's --git-label is --git-sync-tag.\n\
         # The API token comes from the flux-api-token Secret, the deploy key from flux-git-deploy.\n",
    );
    let strategy = if a.replicas > 1 {
        out.push_str(
            "# High availability: the replicas share the units, one writer per unit, through Leases in this\n\
             # namespace (--ha-namespace); a replica stopping releases its units at once.\n",
        );
        "RollingUpdate"
    } else {
        "Recreate"
    };
    let _ = write!(
        out,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: flux\n  namespace: {ns}\n  labels:\n    name: flux\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      name: flux\n  strategy:\n    type: {strategy}\n\
         \x20 template:\n    metadata:\n      annotations:\n        prometheus.io/port: \"{METRICS_PORT}\"\n\
         \x20     labels:\n        name: flux\n    spec:\n      serviceAccountName: flux\n\
         \x20     nodeSelector:\n        kubernetes.io/os: linux\n",
        replicas = a.replicas,
    );
    if a.add_security_context {
        let _ = write!(
            out,
            "      securityContext:\n        runAsNonRoot: true\n        runAsUser: {RUN_AS}\n        runAsGroup: {RUN_AS}\n\
             \x20       fsGroup: {RUN_AS}\n        seccompProfile:\n          type: RuntimeDefault\n"
        );
    }
    let _ = write!(
        out,
        "      volumes:\n      - name: git-key\n        secret:\n          secretName: flux-git-deploy\n\
         \x20         defaultMode: 288 # 0440: readable by the pod's group (fsGroup), as ssh accepts a key it does not own\n\
         \x20     - name: tmp # the git mirror and generation checkouts: the root file system is read-only\n\
         \x20       emptyDir: {{}}\n\
         \x20     containers:\n      - name: flux\n        image: {image}\n        imagePullPolicy: IfNotPresent\n        args:\n",
        image = q(&a.image),
    );
    for arg in fluxd_args(s) {
        let _ = writeln!(out, "        - {}", q(&arg));
    }
    let _ = write!(
        out,
        "        env:\n        - name: FLUX_API_TOKEN\n          valueFrom:\n            secretKeyRef:\n\
         \x20             name: flux-api-token\n              key: token\n\
         \x20       - name: POD_NAME # the replica's id with --ha-namespace\n          valueFrom:\n\
         \x20           fieldRef:\n              fieldPath: metadata.name\n\
         \x20       - name: POD_IP # where the other replicas forward writes for this one's units\n          valueFrom:\n\
         \x20           fieldRef:\n              fieldPath: status.podIP\n\
         \x20       ports:\n        - name: http\n          containerPort: {API_PORT}\n          protocol: TCP\n\
         \x20       - name: metrics\n          containerPort: {METRICS_PORT}\n          protocol: TCP\n\
         \x20       livenessProbe:\n          httpGet:\n            path: /healthz\n            port: http\n\
         \x20         initialDelaySeconds: 5\n          timeoutSeconds: 5\n\
         \x20       readinessProbe: # ready once a sync has run\n          httpGet:\n            path: /readyz\n\
         \x20           port: http\n          initialDelaySeconds: 5\n          timeoutSeconds: 5\n\
         \x20       resources:\n          requests:\n            cpu: 50m\n            memory: 64Mi\n"
    );
    if a.add_security_context {
        out.push_str(
            "        securityContext:\n          readOnlyRootFilesystem: true\n          allowPrivilegeEscalation: false\n\
             \x20         capabilities:\n            drop: [ALL]\n",
        );
    }
    let _ = write!(
        out,
        "        volumeMounts:\n        - name: git-key\n          mountPath: {DEPLOY_KEY_DIR}\n          readOnly: true\n\
         \x20       - name: tmp\n          mountPath: /tmp\n"
    );
    out
}

fn service_yaml(ns: &str) -> String {
    format!(
        "# fluxd's API (fluxctl: kubectl -n {ns} port-forward svc/flux {API_PORT}) and its metrics.\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: flux\n  namespace: {ns}\n  labels:\n    name: flux\n\
         spec:\n  type: ClusterIP\n  selector:\n    name: flux\n  ports:\n\
         \x20 - name: http\n    port: {API_PORT}\n    targetPort: http\n    protocol: TCP\n\
         \x20 - name: metrics\n    port: {METRICS_PORT}\n    targetPort: metrics\n    protocol: TCP\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The arguments `deploy/` is generated with (checked by a test):
    /// `fluxctl install <DEPLOY_ARGS> -o deploy` regenerates it.
    pub(crate) const DEPLOY_ARGS: &[&str] = &[
        "--git-url=ssh://git@github.com/example/fleet.git",
        "--git-email=flux@example.com",
        "--namespace=flux",
        "--api-token=",
    ];

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        install: InstallArgs,
    }

    fn args(list: &[&str]) -> InstallArgs {
        Cli::try_parse_from(std::iter::once("install").chain(list.iter().copied())).expect("valid flags").install
    }

    fn base() -> Vec<&'static str> {
        vec!["--git-url=git@github.com:org/fleet", "--git-email=me@example.com", "--namespace=flux"]
    }

    fn kinds(manifests: &[Manifest]) -> Vec<String> {
        manifests.iter().map(|m| m.file.split('-').nth(1).unwrap_or_default().to_owned()).collect()
    }

    fn doc(manifests: &[Manifest], file_part: &str) -> serde_json::Value {
        let m = manifests.iter().find(|m| m.file.contains(file_part)).expect("the manifest");
        serde_saphyr::from_str(&m.yaml).unwrap_or_else(|e| panic!("{} is not YAML: {e}\n{}", m.file, m.yaml))
    }

    fn fluxd_flags(manifests: &[Manifest]) -> Vec<String> {
        let d = doc(manifests, "deployment");
        let args = d["spec"]["template"]["spec"]["containers"][0]["args"].as_array().expect("args").clone();
        args.iter().map(|a| a.as_str().expect("a string").to_owned()).collect()
    }

    #[test]
    fn flux_v1_defaults_and_required_flags() {
        let e = manifests(&args(&["--git-email=a@b"])).unwrap_err();
        assert_eq!(e, "please supply a valid --git-url argument");
        let e = manifests(&args(&["--git-url=x"])).unwrap_err();
        assert_eq!(e, "please supply a valid --git-email argument");
        let m = manifests(&args(&base())).expect("manifests");
        assert_eq!(
            kinds(&m),
            [
                "namespace",
                "serviceaccount",
                "clusterrole",
                "clusterrolebinding",
                "role",
                "rolebinding",
                "secret",
                "secret",
                "deployment",
                "service"
            ]
        );
        let flags = fluxd_flags(&m);
        for expected in [
            "--git-url=git@github.com:org/fleet",
            "--git-branch=master",
            "--git-sync-tag=flux",
            "--git-user=Flux",
            "--git-email=me@example.com",
            "--listen=0.0.0.0:3030",
        ] {
            assert!(flags.iter().any(|f| f == expected), "{expected} missing from {flags:?}");
        }
        assert!(!flags.iter().any(|f| f.starts_with("--git-path") || f == "--git-readonly"));
        assert!(!flags.iter().any(|f| f.starts_with("--ha-")), "one replica: no high availability");
        assert_eq!(doc(&m, "role-flux-leases")["rules"][0]["resources"][0], "leases", "ready to scale out");
        let d = doc(&m, "deployment");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["containers"][0]["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(pod["containers"][0]["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"], "flux-api-token");
        assert_eq!(pod["volumes"][0]["secret"]["defaultMode"], 0o440);
        let token = doc(&m, "flux-api-token")["stringData"]["token"].as_str().expect("a token").to_owned();
        assert_eq!(token.len(), 64);
        let again = doc(&manifests(&args(&base())).expect("manifests"), "flux-api-token");
        assert_ne!(again["stringData"]["token"], token.as_str(), "each install gets its own token");
        assert!(doc(&m, "flux-git-deploy").get("data").is_none(), "the deploy key Secret is empty");
    }

    #[test]
    fn flags_reach_fluxd_and_values_are_quoted() {
        let mut list = base();
        list.extend([
            "--git-branch=main",
            "--git-path=a,b",
            "--git-path=c",
            "--git-label=my-sync",
            "--git-user=Robot: \"Flux\" #1",
            "--git-readonly",
            "--manifest-generation=true",
            "--registry-disable-scanning",
            "--add-security-context=false",
            "--image=registry.example.com/flux:1",
            "--api-token=s3cret",
        ]);
        let m = manifests(&args(&list)).expect("manifests");
        let flags = fluxd_flags(&m);
        for expected in [
            "--git-branch=main",
            "--git-path=a,b,c",
            "--git-sync-tag=my-sync",
            "--git-user=Robot: \"Flux\" #1",
            "--git-readonly",
            "--manifest-generation",
            "--registry-disable-scanning",
        ] {
            assert!(flags.iter().any(|f| f == expected), "{expected} missing from {flags:?}");
        }
        let d = doc(&m, "deployment");
        assert!(d["spec"]["template"]["spec"].get("securityContext").is_none());
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/flux:1");
        assert_eq!(doc(&m, "flux-api-token")["stringData"]["token"], "s3cret");
        let empty = manifests(&args(&[base(), vec!["--api-token="]].concat())).expect("manifests");
        assert!(doc(&empty, "flux-api-token").get("stringData").is_none());
    }

    #[test]
    fn namespaced_installs_have_no_cluster_wide_rights() {
        let list = [base(), vec!["--namespaced=apps,team", "--namespaced", "apps", "--replicas=2"]].concat();
        let m = manifests(&args(&list)).expect("manifests");
        let files: Vec<&str> = m.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "01-namespace-flux.yaml",
                "02-namespace-apps.yaml",
                "03-namespace-team.yaml",
                "04-serviceaccount-flux.yaml",
                "05-role-flux.apps.yaml",
                "06-rolebinding-flux.apps.yaml",
                "07-role-flux.team.yaml",
                "08-rolebinding-flux.team.yaml",
                "09-role-flux-leases.yaml",
                "10-rolebinding-flux-leases.yaml",
                "11-secret-flux-git-deploy.yaml",
                "12-secret-flux-api-token.yaml",
                "13-deployment-flux.yaml",
                "14-service-flux.yaml",
            ]
        );
        assert!(!m.iter().any(|m| m.yaml.contains("kind: Cluster")), "nothing cluster-wide");
        let flags = fluxd_flags(&m);
        assert!(flags.contains(&"--k8s-allow-namespace=apps".to_owned()));
        assert!(flags.contains(&"--k8s-allow-namespace=team".to_owned()));
        let d = doc(&m, "deployment");
        assert_eq!(d["spec"]["replicas"], 2);
        assert!(flags.contains(&"--ha-namespace=flux".to_owned()), "two replicas share the units: {flags:?}");
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[1]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name", "POD_NAME names the replica");
        assert_eq!(env[2]["name"], "POD_IP");
        assert_eq!(env[2]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP", "POD_IP: the advertised API address");
        assert_eq!(doc(&m, "rolebinding-flux.team")["subjects"][0]["namespace"], "flux");
        assert_eq!(doc(&m, "role-flux-leases")["rules"][0]["resources"][0], "leases");
        for bad in [
            ["--namespace=flux", "--namespaced=Apps"],
            ["--namespace=a_b", "--replicas=1"],
            ["--namespace=flux", "--replicas=0"],
        ] {
            let list = [&base()[..2], &bad[..]].concat();
            assert!(manifests(&args(&list)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_stream_and_the_directory_hold_the_same_objects() {
        let m = manifests(&args(&[base(), vec!["--api-token=t"]].concat())).expect("manifests");
        let docs: Vec<serde_json::Value> = stream(&m)
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d.trim_start_matches("---\n")).expect("YAML"))
            .collect();
        assert_eq!(docs.len(), m.len());
        let dir = tempfile::tempdir().expect("a temp dir");
        write_dir(dir.path(), &m).expect("written");
        let k: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.path().join("kustomization.yaml")).expect("read"))
                .expect("YAML");
        let listed: Vec<&str> =
            k["resources"].as_array().expect("resources").iter().filter_map(|r| r.as_str()).collect();
        assert_eq!(listed, m.iter().map(|m| m.file.as_str()).collect::<Vec<_>>());
        let missing = dir.path().join("missing");
        assert!(write_dir(&missing, &m).unwrap_err().contains("missing"));
    }

    /// `deploy/` is `fluxctl install` with [`DEPLOY_ARGS`]. When this fails, regenerate it:
    /// `rm deploy/*.yaml && cargo run -q -p examples --example fluxctl -- install
    /// --git-url=ssh://git@github.com/example/fleet.git --git-email=flux@example.com --namespace=flux
    /// --api-token= -o deploy`.
    #[test]
    fn deploy_is_in_step_with_fluxctl_install() {
        let m = manifests(&args(DEPLOY_ARGS)).expect("manifests");
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut expected: Vec<(String, String)> = m.iter().map(|m| (m.file.clone(), m.yaml.clone())).collect();
        expected.push(("kustomization.yaml".into(), kustomization(&m)));
        expected.sort();
        let mut actual: Vec<(String, String)> = std::fs::read_dir(&deploy)
            .expect("deploy/")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).expect("read"))
            })
            .collect();
        actual.sort();
        let differing: Vec<&str> = expected
            .iter()
            .filter(|e| !actual.contains(e))
            .map(|(name, _)| name.as_str())
            .chain(actual.iter().filter(|a| !expected.iter().any(|e| e.0 == a.0)).map(|(name, _)| name.as_str()))
            .collect();
        assert!(
            differing.is_empty(),
            "deploy/ is not what `fluxctl install` prints ({differing:?} differ, are missing or extra): \
             regenerate it (see this test's doc)"
        );
        assert_eq!(
            actual, expected,
            "deploy/ is not what `fluxctl install` prints: regenerate it (see this test's doc)"
        );
    }
}
