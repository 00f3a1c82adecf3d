//! `fluxctl install` against the real API server, and fluxd run with exactly the identity a pod
//! of that install gets: a ServiceAccount token from the TokenRequest API, the
//! `KUBERNETES_SERVICE_HOST`/`_PORT` variables, and the files under
//! `/var/run/secrets/kubernetes.io/serviceaccount`, provided in a private mount namespace
//! (`unshare -m`, root only) so the host is untouched. fluxd finds no kubeconfig and uses them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flux_testenv::kube::ADMIN;
use flux_testenv::{find_program, free_port, require, wait_until};
use serde_json::{Value, json};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary, text};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

/// Runs `kubectl` as the administrator, with `stdin` if given.
fn kubectl(servers: &Servers, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("kubectl");
    command.arg(format!("--kubeconfig={}", servers.kube.kubeconfig(ADMIN).display())).args(args);
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run kubectl");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write to kubectl");
    }
    child.wait_with_output().expect("kubectl output")
}

fn kubectl_ok(servers: &Servers, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(servers, args, stdin);
    assert!(out.status.success(), "kubectl {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// `fluxctl install ARGS`: its YAML stream.
fn install(args: &[&str]) -> String {
    let out = Command::new(example_binary("fluxctl")).arg("install").args(args).output().expect("run fluxctl");
    assert!(out.status.success(), "fluxctl install failed: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The documents of a YAML stream.
fn documents(stream: &str) -> Vec<(Value, String)> {
    stream
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| (serde_saphyr::from_str::<Value>(d).expect("a YAML document"), d.to_owned()))
        .collect()
}

/// Applies an install's output as an administrator would: its Namespaces first (a dry run of
/// objects in a namespace that does not exist yet fails), a server-side dry run of the rest,
/// which must persist nothing, then the rest.
fn apply_install(servers: &Servers, stream: &str, namespace: &str) {
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        documents(stream).into_iter().partition(|(d, _)| d["kind"] == "Namespace");
    let join = |docs: &[(Value, String)]| docs.iter().map(|(_, t)| format!("---\n{t}")).collect::<String>();
    kubectl_ok(servers, &["apply", "--server-side", "-f", "-"], Some(&join(&namespaces)));
    let dry = kubectl_ok(servers, &["apply", "--server-side", "--dry-run=server", "-f", "-"], Some(&join(&rest)));
    assert!(dry.contains("deployment.apps/flux serverside-applied (server dry run)"), "dry run: {dry}");
    let absent = kubectl(servers, &["-n", namespace, "get", "serviceaccount", "flux"], None);
    assert!(!absent.status.success(), "the dry run created the ServiceAccount");
    kubectl_ok(servers, &["apply", "--server-side", "-f", "-"], Some(stream));
}

/// fluxd's arguments as the installed Deployment has them, with the test's own listen
/// addresses, and without the deploy key (the repository is git://; the Secret is empty).
fn deployment_args(stream: &str) -> Vec<String> {
    let (deployment, _) = documents(stream).into_iter().find(|(d, _)| d["kind"] == "Deployment").expect("a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["valueFrom"]["secretKeyRef"]["name"], "flux-api-token");
    let args = container["args"].as_array().expect("args");
    args.iter()
        .filter_map(Value::as_str)
        .filter(|a| !a.starts_with("--listen") && !a.starts_with("--git-deploy-key"))
        .map(str::to_owned)
        .collect()
}

/// What a pod of the ServiceAccount `flux` in `namespace` finds under
/// `/var/run/secrets/kubernetes.io/serviceaccount`, and its API token, as the kubelet gives them.
fn pod_identity(servers: &Servers, namespace: &str) -> (PathBuf, String) {
    let dir = servers.work.path().join(format!("sa-{namespace}"));
    std::fs::create_dir_all(&dir).expect("the service account dir");
    let token = kubectl_ok(servers, &["-n", namespace, "create", "token", "flux", "--duration=1h"], None);
    std::fs::write(dir.join("token"), token.trim()).expect("write the token");
    std::fs::copy(servers.kube.dir().join("certs").join("apiserver.crt"), dir.join("ca.crt")).expect("copy the CA");
    std::fs::write(dir.join("namespace"), namespace).expect("write the namespace");
    let encoded = kubectl_ok(
        servers,
        &["-n", namespace, "get", "secret", "flux-api-token", "-o", "jsonpath={.data.token}"],
        None,
    );
    let out = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let mut child = out.expect("run base64");
    child.stdin.take().expect("stdin").write_all(encoded.as_bytes()).expect("write");
    let api_token = text(&child.wait_with_output().expect("base64").stdout);
    (dir, api_token)
}

/// `fluxd ARGS` in a private mount namespace holding the pod's service account files, with the
/// in-cluster environment and no kubeconfig to be found.
fn in_pod(servers: &Servers, sa_dir: &Path, api_token: &str, args: &[String]) -> Command {
    let port = servers.kube.url().rsplit(':').next().expect("the API server's port").to_owned();
    let home = servers.work.path().join("pod-home");
    std::fs::create_dir_all(&home).expect("a home");
    // /var/run is a link to /run on most systems: a tmpfs on what it resolves to hides nothing
    // outside this process and its children.
    let script = "run=$(readlink -f /var/run) && mount -t tmpfs tmpfs \"$run\" \
                  && mkdir -p \"$run/secrets/kubernetes.io/serviceaccount\" \
                  && mount --bind \"$1\" \"$run/secrets/kubernetes.io/serviceaccount\" && shift && exec \"$@\"";
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(sa_dir)
        .arg(example_binary("fluxd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("RUST_LOG", "info")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port)
        .env("FLUX_API_TOKEN", api_token);
    command
}

/// The image of the first container of Deployment `name` in `namespace`, if it exists.
fn deployed_image(servers: &Servers, namespace: &str, name: &str) -> Option<String> {
    let path = "jsonpath={.spec.template.spec.containers[0].image}";
    let out = kubectl(servers, &["-n", namespace, "get", "deployment", name, "-o", path], None);
    out.status.success().then(|| text(&out.stdout))
}

fn exists(servers: &Servers, args: &[&str]) -> bool {
    kubectl(servers, &[&["get"], args].concat(), None).status.success()
}

fn deployment(name: &str, namespace: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations:\n\
         \x20   fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.{name}: semver:~1\nspec:\n  selector:\n    matchLabels:\n\
         \x20     app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n\
         \x20     - name: {name}\n        image: {image}\n"
    )
}

fn config_map(name: &str, namespace: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  a: b\n")
}

/// Whether this process may make a private mount namespace (root, with `unshare`).
fn can_unshare() -> Option<()> {
    find_program("unshare")?;
    let id = Command::new("id").arg("-u").output().ok()?;
    (text(&id.stdout).trim() == "0").then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxd_runs_with_the_identity_fluxctl_install_gives_it() {
    let kubectl_found = require("kubectl", find_program("kubectl"));
    let unshare = require("root and unshare (a private mount namespace for the pod's files)", can_unshare());
    let (Some(_), Some(())) = (kubectl_found, unshare) else { return };
    let Some(servers) = Servers::start() else { return };
    let host_secrets = Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists();
    let reg = servers.registry.host().to_owned();
    servers.push("demo/app:1.0.0", T1).await;
    let app = format!("{reg}/demo/app");
    servers.commit(
        &[
            ("deploy/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"),
            ("deploy/app.yaml", &deployment("app", "demo", &format!("{app}:1.0.0"))),
            ("deploy/extra.yaml", &config_map("extra", "demo")),
            ("team/inside.yaml", &config_map("inside", "apps")),
            ("team/worker.yaml", &deployment("worker", "apps", &format!("{app}:1.0.0"))),
            ("team/outside.yaml", &config_map("outside", "demo")),
            ("team/rogue.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: rogue\n"),
        ],
        "Add the demo app and the team's",
    );

    // The cluster-wide install, accepted by the server (dry run first), then applied.
    let git_url = format!("--git-url={}", servers.git_daemon.url());
    let token_flag = format!("--api-token={TOKEN}");
    let common = [git_url.as_str(), "--git-branch=main", "--git-email=bot@flux.invalid", &token_flag];
    let stream = install(&[&common[..], &["--namespace=flux", "--git-path=deploy", "--replicas=2"]].concat());
    apply_install(&servers, &stream, "flux");
    assert!(exists(&servers, &["clusterrolebinding", "flux"]));
    assert!(exists(&servers, &["-n", "flux", "rolebinding", "flux-leases"]), "replicas get the Leases' RBAC");
    let (sa_dir, api_token) = pod_identity(&servers, "flux");
    assert_eq!(api_token, TOKEN, "the Deployment's token comes from the flux-api-token Secret");

    // fluxd as the pod: a full sync, automation and GC, all as system:serviceaccount:flux:flux.
    let port = free_port();
    let mut args = deployment_args(&stream);
    args.extend([
        format!("--listen=127.0.0.1:{port}"),
        format!("--registry-insecure-host={reg}"),
        "--git-poll-interval=1s".into(),
        "--sync-interval=2s".into(),
        "--automation-interval=1h".into(),
        "--sync-garbage-collection".into(),
    ]);
    let fluxd = Fluxd::spawn(&servers, in_pod(&servers, &sa_dir, &api_token, &args), port);
    assert!(
        wait_until(PATIENCE, || deployed_image(&servers, "demo", "app") == Some(format!("{app}:1.0.0"))),
        "the in-cluster fluxd did not sync:\n{}",
        fluxd.log()
    );
    assert!(exists(&servers, &["-n", "demo", "configmap", "extra"]));
    servers.push("demo/app:1.2.0", T2).await;
    let before = servers.repo.head();
    let event = json!({"events": [{"action": "push", "target": {"repository": "demo/app", "tag": "1.2.0"}}]});
    assert_eq!(fluxd.post("/api/v1/notify/registry", &event).await.0, 202);
    let after = servers.wait_for_commit(&before);
    assert_eq!(
        servers.changed_lines(&before, &after),
        format!(
            "--- a/deploy/app.yaml\n+++ b/deploy/app.yaml\n-        image: {app}:1.0.0\n+        image: {app}:1.2.0\n"
        )
    );
    assert!(
        wait_until(PATIENCE, || deployed_image(&servers, "demo", "app") == Some(format!("{app}:1.2.0"))),
        "the cluster did not follow the automation commit:\n{}",
        fluxd.log()
    );
    servers.delete("deploy/extra.yaml", "Drop the extra config");
    assert!(
        wait_until(PATIENCE, || !exists(&servers, &["-n", "demo", "configmap", "extra"])),
        "garbage collection did not delete what left git:\n{}",
        fluxd.log()
    );
    let identity = "system:serviceaccount:flux:flux";
    assert!(servers.kube.requests(identity, &["patch"]) > 0, "fluxd did not apply as its ServiceAccount");
    assert_eq!(servers.kube.requests(identity, &["delete"]), 1, "one object left git");
    fluxd.terminate();

    // An install limited to `apps`: no cluster-wide rights; outside objects refused by name.
    let team = install(
        &[&common[..], &["--namespace=team-flux", "--namespaced=apps", "--git-path=team", "--git-label=flux-team"]]
            .concat(),
    );
    assert!(!team.contains("kind: Cluster"), "a namespaced install has no cluster-wide RBAC:\n{team}");
    apply_install(&servers, &team, "team-flux");
    let (sa_dir, api_token) = pod_identity(&servers, "team-flux");
    let mut args = deployment_args(&team);
    assert!(
        args.contains(&"--k8s-allow-namespace=apps".to_owned())
            && args.contains(&"--git-sync-tag=flux-team".to_owned())
    );
    args.extend([format!("--registry-insecure-host={reg}"), "--once".into()]);
    let mut command = in_pod(&servers, &sa_dir, &api_token, &args);
    let out = command.output().expect("run fluxd --once");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("namespaced fluxd --once:\n{report}");
    // As in Flux v1, objects outside the allowed namespaces are left out, not a failure of the
    // others: each is reported with why.
    assert!(out.status.success(), "the allowed objects synced and were automated");
    assert!(report.contains("demo:configmap/outside refused: namespace demo is not in the allowed namespaces"));
    // Flux v1's IsAllowedResource: a Namespace that is not listed is refused.
    assert!(report.contains("<cluster>:namespace/rogue refused: namespace rogue is not in the allowed namespaces"));
    assert!(exists(&servers, &["-n", "apps", "configmap", "inside"]), "the allowed object was applied");
    assert!(!exists(&servers, &["-n", "demo", "configmap", "outside"]) && !exists(&servers, &["namespace", "rogue"]));
    assert_eq!(
        deployed_image(&servers, "apps", "worker").as_deref(),
        Some(format!("{app}:1.2.0").as_str()),
        "automation inside the allowed namespace works and the cluster follows"
    );
    let team_identity = "system:serviceaccount:team-flux:flux";
    assert_eq!(servers.kube.requests(team_identity, &["delete"]), 0);
    assert_eq!(
        Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(),
        host_secrets,
        "the pod's files stayed in its mount namespace"
    );
}

/// Kills and removes a container this test started, by its id.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", "--time", "2", &self.0]).output();
    }
}

/// Runs `podman ARGS` with runc and ulimits this machine allows (as scripts/build-image does).
fn podman(conf: &Path, args: &[&str]) -> Output {
    let out = Command::new("podman").args(args).env("CONTAINERS_CONF", conf).output().expect("run podman");
    assert!(out.status.success(), "podman {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// `scripts/build-image --push` to the test registry; the image's config, the tools in its root
/// file system, and fluxd started from it (podman, host network) answering `/healthz` and, after
/// syncing the test repository into the test cluster, `/readyz`. Costly (a release build and a
/// Debian root file system), so it runs only with `FLUX_TEST_IMAGE=1`, as `.ci/run` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_builds_pushes_and_serves() {
    if std::env::var_os("FLUX_TEST_IMAGE").is_none() {
        eprintln!("skipping the image test: set FLUX_TEST_IMAGE=1 to build and run the image (root, apt)");
        return;
    }
    if find_program("podman").is_none() {
        let installed = Command::new("apt-get").args(["install", "-y", "-q", "podman"]).output().expect("run apt-get");
        assert!(installed.status.success(), "apt-get install podman: {}", text(&installed.stderr));
    }
    let Some(skopeo) = require("skopeo", find_program("skopeo")) else { return };
    let Some(servers) = Servers::start() else { return };
    servers.commit(&[("deploy/config.yaml", &config_map("from-the-image", "default"))], "A config map");
    let reference = format!("{}/flux-rs:e2e", servers.registry.host());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = std::time::Instant::now();
    let built = Command::new(root.join("scripts/build-image")).args(["--push", &reference]).current_dir(&root).output();
    let built = built.expect("run scripts/build-image");
    eprintln!("scripts/build-image in {:?}:\n{}", started.elapsed(), text(&built.stderr));
    assert!(built.status.success(), "scripts/build-image failed: {}{}", text(&built.stdout), text(&built.stderr));

    // The pushed config: the non-root user and fluxd as the entrypoint.
    let inspect = Command::new(skopeo)
        .args(["inspect", "--tls-verify=false", "--config", &format!("docker://{reference}")])
        .output()
        .expect("run skopeo");
    assert!(inspect.status.success(), "skopeo inspect: {}", text(&inspect.stderr));
    let config: Value = serde_json::from_slice(&inspect.stdout).expect("the image config");
    assert_eq!(config["config"]["User"], "10001:10001");
    assert_eq!(config["config"]["Entrypoint"], json!(["/usr/local/bin/fluxd"]));

    // The tools, run in the image's root file system as its user.
    let conf = servers.work.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .expect("write containers.conf");
    podman(&conf, &["pull", "--quiet", "--tls-verify=false", &reference]);
    let checks = "id -u && git --version && ssh -V 2>&1 && gpg --version | head -1 && kubectl version --client \
                  && kubectl kustomize --help >/dev/null && fluxd --version && fluxctl --version \
                  && grep -c -e '^github.com ' -e '^gitlab.com ' -e '^bitbucket.org ' -e '^ssh.dev.azure.com ' \
                  -e '^vs-ssh.visualstudio.com ' /etc/ssh/ssh_known_hosts";
    let tools = text(
        &podman(&conf, &["run", "--rm", "--network", "host", "--entrypoint", "sh", &reference, "-c", checks]).stdout,
    );
    eprintln!("in the image:\n{tools}");
    let lines: Vec<&str> = tools.lines().collect();
    assert_eq!(lines.first(), Some(&"10001"), "runs as the non-root user");
    for tool in ["git version", "OpenSSH", "gpg (GnuPG)", "Client Version", "fluxd ", "fluxctl "] {
        assert!(tools.contains(tool), "{tool} missing in the image:\n{tools}");
    }
    assert_eq!(lines.last(), Some(&"11"), "the known_hosts of the five hosts");

    // fluxd from the image, on the host network, with a kubeconfig its user can read.
    let kube_dir = servers.work.path().join("image-kube");
    std::fs::create_dir_all(&kube_dir).expect("a kube dir");
    std::fs::copy(servers.kube.dir().join("certs").join("apiserver.crt"), kube_dir.join("ca.crt")).expect("the CA");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: /kube/ca.crt\n\
         users:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: admin\n  context:\n    cluster: test\n    user: admin\n\
         current-context: admin\n",
        servers.kube.url(),
        servers.kube.token(ADMIN)
    );
    std::fs::write(kube_dir.join("config"), kubeconfig).expect("write the kubeconfig");
    for (path, mode) in [(kube_dir.clone(), 0o755), (kube_dir.join("config"), 0o644), (kube_dir.join("ca.crt"), 0o644)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let port = free_port();
    let volume = format!("{}:/kube:ro", kube_dir.display());
    let token_env = format!("FLUX_API_TOKEN={TOKEN}");
    let (git_url, listen) = (format!("--git-url={}", servers.git_daemon.url()), format!("--listen=127.0.0.1:{port}"));
    let args = [
        "run",
        "-d",
        "--network",
        "host",
        "-v",
        &volume,
        "-e",
        &token_env,
        &reference,
        &git_url,
        "--git-branch=main",
        "--git-path=deploy",
        "--kubeconfig=/kube/config",
        &listen,
    ];
    let container = Container(text(&podman(&conf, &args).stdout).trim().to_owned());
    let logs = || {
        let out = Command::new("podman").args(["logs", &container.0]).env("CONTAINERS_CONF", &conf).output();
        out.map(|o| format!("{}{}", text(&o.stdout), text(&o.stderr))).unwrap_or_default()
    };
    let status = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", &url]).output();
        out.map(|o| text(&o.stdout)).unwrap_or_default()
    };
    assert!(wait_until(PATIENCE, || status("/healthz") == "200"), "/healthz did not answer:\n{}", logs());
    assert!(wait_until(PATIENCE, || status("/readyz") == "200"), "fluxd in the image did not sync:\n{}", logs());
    assert!(exists(&servers, &["-n", "default", "configmap", "from-the-image"]));
    drop(container);
    let _ = Command::new("podman").args(["rmi", "-f", &reference]).env("CONTAINERS_CONF", &conf).output();
}
