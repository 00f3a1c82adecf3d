//! fluxctl in Flux v1's forms against a running fluxd, all real (git daemon, docker-registry,
//! kube-apiserver): namespace-less ids and the kube context's namespace, v1's tables, JSON and
//! flags, `save` round-tripped through the apiserver, completion scripts loaded by bash,
//! `identity` fingerprints checked against ssh-keygen, `release --interactive` driven in tmux,
//! and port-forward pod discovery (no kubelet here: the forward itself cannot complete).

use std::path::Path;
use std::process::{Command, Output};

use flux_testenv::kube::ADMIN;
use flux_testenv::wait_until;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary, text};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

fn deployment(name: &str, notes: &str, containers: &[(&str, &str)]) -> String {
    let containers: String =
        containers.iter().map(|(n, i)| format!("      - name: {n}\n        image: {i}\n")).collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: demo\n{notes}spec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n{containers}"
    )
}

/// fluxctl with `env` added to the harness's isolation (no machine git config or kubeconfig).
fn fluxctl(fluxd: &Fluxd, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(example_binary("fluxctl"));
    command
        .args(args)
        .env("FLUX_URL", &fluxd.url)
        .env("FLUX_SERVICE_TOKEN", TOKEN)
        .env_remove("FLUX_TOKEN")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("KUBECONFIG", "/dev/null");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run fluxctl");
    eprintln!("fluxctl {args:?}:\n{}{}", text(&out.stdout), text(&out.stderr));
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "fluxctl failed: {}", text(&out.stderr));
    text(&out.stdout)
}

/// An error: exit 1 and one line on stderr; that line.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("Error: "), "{err}");
    last
}

/// A kubeconfig whose current context names `namespace` (the server is never contacted).
fn context_kubeconfig(dir: &Path, namespace: &str) -> String {
    let path = dir.join("context-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n    namespace: {namespace}\n\
             current-context: ctx\n"
        ),
    )
    .expect("write a kubeconfig");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxctl_speaks_flux_v1() {
    let Some(servers) = Servers::start() else { return };
    let reg = servers.registry.host().to_owned();
    for (image, at) in [("demo/app:1.0.0", T1), ("demo/app:1.1.0", T2), ("demo/side:1.0", T1), ("demo/side:1.1", T2)] {
        servers.push(image, at).await;
    }
    let (app, side) = (format!("{reg}/demo/app"), format!("{reg}/demo/side"));
    let files = [
        ("deploy/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n".to_owned()),
        (
            "deploy/app.yaml",
            deployment("app", "", &[("app", &format!("{app}:1.0.0")), ("side", &format!("{side}:1.0"))]),
        ),
        (
            "deploy/web.yaml",
            deployment(
                "web",
                "  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.web: semver:~1.0\n",
                &[("web", &format!("{app}:1.0.0"))],
            ),
        ),
        (
            "deploy/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: demo\ndata:\n  colour: blue\n"
                .into(),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    servers.commit(&refs, "The demo");
    let key = servers.work.path().join("identity");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-C", "flux@e2e", "-f"])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(keygen.success());
    let key_flag = format!("--git-deploy-key={}", key.display());
    let fluxd = Fluxd::start(
        &servers,
        &["--git-poll-interval=1s", "--sync-interval=2s", "--automation-interval=1h", &key_flag],
    );
    let none: &[(&str, &str)] = &[];
    let running = || {
        let out = fluxctl(&fluxd, none, &["list-workloads", "-n", "demo", "-o", "json"]);
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.iter().filter(|w| w["status"].is_object()).count() == 2
    };
    assert!(wait_until(PATIENCE, running), "the demo was not synced:\n{}", fluxd.log());

    // list-workloads as v1 printed it; the kube context's namespace when -n is not given.
    let table = ok(&fluxctl(&fluxd, none, &["list-workloads", "-n", "demo"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY"]
    );
    let image_col = lines[0].find("IMAGE").expect("IMAGE");
    assert!(lines[1].starts_with("demo:deployment/app  app"), "{table}");
    assert_eq!(lines[1].find(&format!("{app}:1.0.0")), Some(image_col), "aligned: {table}");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["side", format!("{side}:1.0").as_str()], "{table}");
    assert_eq!(lines[2].find("side"), lines[0].find("CONTAINER"), "aligned: {table}");
    assert!(lines[3].starts_with("demo:deployment/web") && lines[3].ends_with("automated"), "{table}");
    let kubeconfig = context_kubeconfig(servers.work.path(), "demo");
    let in_context = ok(&fluxctl(&fluxd, &[("KUBECONFIG", &kubeconfig)], &["list-workloads"]));
    assert_eq!(in_context, table, "-n defaults to the context's namespace");
    let aliased = ok(&fluxctl(&fluxd, &[("KUBECONFIG", &kubeconfig)], &["list-controllers", "--no-headers"]));
    let cells = |t: &str| -> Vec<Vec<String>> {
        t.lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
    };
    assert_eq!(cells(&aliased), cells(&table)[1..], "list-controllers, --no-headers");
    let filtered = ok(&fluxctl(&fluxd, none, &["list-workloads", "-n", "demo", "-c", "web", "--no-headers"]));
    assert!(filtered.starts_with("demo:deployment/web") && filtered.lines().count() == 1, "{filtered}");
    let json: Vec<Value> =
        serde_json::from_str(&ok(&fluxctl(&fluxd, none, &["list-workloads", "-n", "demo", "--output-format", "json"])))
            .expect("JSON");
    let web = json.iter().find(|w| w["ID"] == "demo:deployment/web").expect("v1's ID");
    assert_eq!(web["Containers"][0]["Current"]["ID"], format!("{app}:1.0.0").as_str());
    assert_eq!((web["Automated"].clone(), web["Locked"].clone()), (json!(true), json!(false)));
    assert_eq!(web["Policies"]["tag.web"], "semver:~1.0");
    assert_eq!(web["id"], "demo:deployment/web", "flux-rs's fields stay");
    assert_eq!(
        one_line_error(&fluxctl(&fluxd, none, &["list-workloads", "-o", "yaml"])),
        "Error: invalid output format specified"
    );
    assert!(one_line_error(&fluxctl(&fluxd, none, &["list-workloads", "--bogus"])).contains("--bogus"));

    // list-images with a namespace-less id, v1's limit and markers; the deprecated -c.
    let images = ok(&fluxctl(&fluxd, none, &["list-images", "-n", "demo", "-w", "deployment/app", "-l", "1"]));
    let cells: Vec<Vec<&str>> = images.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(cells[0], ["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"], "{images}");
    assert_eq!(cells[1], ["demo:deployment/app", "app", app.as_str()], "{images}");
    assert_eq!(cells[2], ["|", "1.1.0", "01", "Feb", "24", "00:00", "UTC"], "{images}");
    assert_eq!(cells[3], ["'->", "1.0.0", "01", "Jan", "24", "00:00", "UTC"], "{images}");
    let deprecated = fluxctl(&fluxd, &[("KUBECONFIG", &kubeconfig)], &["list-images", "-c", "deployment/app"]);
    assert_eq!(ok(&deprecated), ok(&fluxctl(&fluxd, none, &["list-images", "-w", "demo:deployment/app"])));
    assert!(text(&deprecated.stderr).contains("Flag --controller has been deprecated"));
    let json: Vec<Value> = serde_json::from_str(&ok(&fluxctl(
        &fluxd,
        none,
        &["list-images", "-w", "demo:deployment/app", "-o", "json", "-l", "1"],
    )))
    .expect("JSON");
    assert_eq!(json[0]["ID"], "demo:deployment/app");
    assert_eq!(json[0]["Containers"][0]["Available"].as_array().map(Vec::len), Some(1), "-l cuts the JSON too");
    assert_eq!(json[0]["Containers"][0]["Current"]["ID"], format!("{app}:1.0.0").as_str());

    // Policy commands: -n with kind/name, -m, --user's default from git config, v1's output.
    let git_config = servers.work.path().join("gitconfig");
    std::fs::write(&git_config, "[user]\n\tname = Jane Doe\n\temail = jane@example.com\n").expect("gitconfig");
    let git_config = git_config.display().to_string();
    let head = servers.repo.head();
    let locked = fluxctl(
        &fluxd,
        &[("GIT_CONFIG_GLOBAL", &git_config)],
        &["lock", "-n", "demo", "-w", "deployment/web", "-m", "hold"],
    );
    let said = ok(&locked);
    assert_eq!(
        said.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).collect::<Vec<_>>(),
        [vec!["WORKLOAD", "STATUS", "UPDATES"], vec!["demo:deployment/web", "success"]]
    );
    assert!(text(&locked.stderr).contains("Commit pushed:\t"), "{}", text(&locked.stderr));
    let changed = servers.changed_lines(&head, &servers.repo.head());
    let added =
        |key: &str, value: &str| changed.lines().any(|l| l.starts_with('+') && l.contains(key) && l.contains(value));
    assert!(added("fluxcd.io/locked_user", "Jane Doe <jane@example.com>"), "{changed}");
    assert!(added("fluxcd.io/locked_msg", "hold"), "{changed}");
    let again = fluxctl(&fluxd, none, &["automate", "-n", "demo", "-w", "deployment/web"]);
    assert!(ok(&again).is_empty() && text(&again.stderr).contains("Nothing to do"), "already automated");
    ok(&fluxctl(&fluxd, none, &["unlock", "-w", "demo:deployment/web", "--user", "Ops <ops@example.com>"]));
    assert_eq!(one_line_error(&fluxctl(&fluxd, none, &["policy", "-n", "demo"])), "Error: -w, --workload is required");
    assert_eq!(
        one_line_error(&fluxctl(&fluxd, none, &["policy", "-w", "demo:deployment/web", "--lock", "--unlock"])),
        "Error: lock and unlock both specified"
    );

    // release: -w is --watch, --workload has no short form; v1's checks and output.
    let nope = fluxctl(
        &fluxd,
        none,
        &["release", "-n", "demo", "--workload", "deployment/app", "--update-all-images", "--dry-run", "-w"],
    );
    assert_eq!(one_line_error(&nope), "Error: cannot use --watch with --dry-run");
    assert_eq!(
        one_line_error(&fluxctl(&fluxd, none, &["release", "--all"])),
        "Error: please supply exactly one of --update-image=<image> or --update-all-images"
    );
    let planned = fluxctl(
        &fluxd,
        none,
        &["release", "-n", "demo", "--workload=deployment/app", "--update-all-images", "--dry-run"],
    );
    let plan = ok(&planned);
    assert!(text(&planned.stderr).starts_with("Submitting dry-run release ..."), "{}", text(&planned.stderr));
    let rows: Vec<Vec<&str>> = plan.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["WORKLOAD", "STATUS", "UPDATES"]);
    assert_eq!(rows[1], ["demo:deployment/app", "success", "app:", &format!("{app}:1.0.0"), "->", "1.1.0"]);
    assert_eq!(rows[2], ["side:", &format!("{side}:1.0"), "->", "1.1"]);

    // release --interactive in a terminal (tmux): uncheck the sidecar, release the rest.
    if flux_testenv::find_program("tmux").is_some() {
        let head = servers.repo.head();
        let done = servers.work.path().join("interactive.done");
        let script = format!(
            "env FLUX_URL={} FLUX_SERVICE_TOKEN={TOKEN} GIT_CONFIG_GLOBAL=/dev/null KUBECONFIG=/dev/null {} release \
             --workload demo:deployment/app --update-all-images --interactive; echo \"exit=$?\" > {}; sleep 60",
            fluxd.url,
            example_binary("fluxctl").display(),
            done.display()
        );
        let session = format!("fluxctl-{}", std::process::id());
        let tmux = |args: &[&str]| Command::new("tmux").args(args).output().expect("run tmux");
        assert!(tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "40", &script]).status.success());
        let screen = || text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
        assert!(wait_until(PATIENCE, || screen().contains("hit [Enter] to release selected")), "no menu: {}", screen());
        let menu = screen();
        assert!(menu.contains("\u{21d2} \u{25c9} demo:deployment/app"), "{menu}");
        tmux(&["send-keys", "-t", &session, "Down"]);
        let at_side = || screen().lines().any(|l| l.starts_with('\u{21d2}') && l.contains("side:"));
        assert!(wait_until(PATIENCE, at_side), "the cursor did not move: {}", screen());
        tmux(&["send-keys", "-t", &session, "Space"]);
        assert!(wait_until(PATIENCE, || screen().contains('\u{25ef}')), "the sidecar was not unchecked: {}", screen());
        tmux(&["send-keys", "-t", &session, "Enter"]);
        assert!(wait_until(PATIENCE, || done.exists()), "fluxctl did not finish: {}", screen());
        let finished = screen();
        tmux(&["kill-session", "-t", &session]);
        assert_eq!(std::fs::read_to_string(&done).expect("exit").trim(), "exit=0", "{finished}");
        let changed = servers.changed_lines(&head, &servers.repo.head());
        assert_eq!(
            changed,
            format!(
                "--- a/deploy/app.yaml\n+++ b/deploy/app.yaml\n-        image: {app}:1.0.0\n+        image: {app}:1.1.0\n"
            ),
            "only the checked update: {finished}"
        );
    } else {
        assert!(std::env::var_os("FLUX_TEST_REQUIRE_SERVERS").is_none(), "tmux is missing");
    }

    // A release waits for its commit to be applied; -w follows the rollout.
    let released =
        fluxctl(&fluxd, none, &["release", "--workload", "demo:deployment/app", "-i", &format!("{side}:1.1"), "-v"]);
    let said = text(&released.stderr);
    assert!(said.contains("Commit pushed:\t") && said.contains("Commit applied:\t"), "{said}");

    // save: one file per object as v1 named them; applying them changes nothing.
    let dir = servers.work.path().join("saved");
    std::fs::create_dir(&dir).expect("a directory");
    let saving = ok(&fluxctl(&fluxd, none, &["save", "-o", &dir.display().to_string()]));
    assert!(
        saving.contains(&format!("Saving Deployment 'app' to {}", dir.join("demo/app-dep.yaml").display())),
        "{saving}"
    );
    for file in ["demo-ns.yaml", "demo/app-dep.yaml", "demo/web-dep.yaml", "demo/config-ConfigMap.yaml"] {
        let yaml = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            !yaml.contains("sync-gc-mark") && !yaml.contains("resourceVersion") && !yaml.contains("status:"),
            "{yaml}"
        );
    }
    let stream = ok(&fluxctl(&fluxd, none, &["save"]));
    assert!(stream.starts_with("---\napiVersion: "), "{stream}");
    if flux_testenv::find_program("kubectl").is_some() {
        let kubeconfig = servers.kube.kubeconfig(ADMIN);
        let diff = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["diff", "--server-side", "--force-conflicts", "-R", "-f"])
            .arg(&dir)
            .output()
            .expect("run kubectl diff");
        assert_eq!(
            diff.status.code(),
            Some(0),
            "applying the saved objects would change: {}{}",
            text(&diff.stdout),
            text(&diff.stderr)
        );
    }

    // completion scripts load.
    let bin = example_binary("fluxctl").display().to_string();
    let bash = Command::new("bash")
        .args(["-c", &format!("source <({bin} completion bash) && complete -p fluxctl")])
        .output()
        .expect("run bash");
    assert!(bash.status.success() && text(&bash.stdout).contains("_fluxctl"), "{}", text(&bash.stderr));
    assert!(ok(&fluxctl(&fluxd, none, &["completion", "zsh"])).starts_with("#compdef fluxctl"));
    assert!(ok(&fluxctl(&fluxd, none, &["completion", "fish"])).contains("complete -c fluxctl"));

    // identity: the key, and its fingerprint and randomart as ssh-keygen prints them.
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("the public key");
    assert_eq!(ok(&fluxctl(&fluxd, none, &["identity"])).trim(), public.trim());
    for (hash, flag) in [("md5", vec!["-l"]), ("sha256", vec!["-l", "-E", "sha256"])] {
        let keygen = Command::new("ssh-keygen")
            .args(["-l", "-v", "-E", hash, "-f"])
            .arg(key.with_extension("pub"))
            .output()
            .expect("ssh-keygen");
        let keygen = text(&keygen.stdout);
        let (first, art) = keygen.split_once('\n').expect("two parts");
        let print = first.split_whitespace().nth(1).expect("the fingerprint");
        let print = if hash == "md5" { print.trim_start_matches("MD5:") } else { print };
        let mut args = vec!["identity"];
        args.extend(flag.iter().copied());
        assert_eq!(ok(&fluxctl(&fluxd, none, &args)), format!("{print}\n"));
        args.push("-v");
        assert_eq!(ok(&fluxctl(&fluxd, none, &args)), format!("{print}\n{art}"));
    }
    let regenerate = one_line_error(&fluxctl(&fluxd, none, &["identity", "--regenerate"]));
    // This fluxd was given its key with --git-deploy-key: the daemon says it cannot regenerate it
    // (the Secret-kept key is regenerated in e2e::deploy_key).
    assert!(regenerate.contains("cannot be regenerated"), "{regenerate}");

    // The unit, the timeout, Flux v1's URL form.
    let (status, units) = fluxd.get("/api/v1/units", Some(TOKEN)).await;
    assert_eq!(status, 200, "{units}");
    let units: Value = serde_json::from_str(&units).expect("units");
    let unit = units["units"][0]["name"].as_str().expect("a unit").to_owned();
    ok(&fluxctl(&fluxd, &[("FLUX_UNIT", &unit)], &["list-workloads", "-n", "demo"]));
    assert!(one_line_error(&fluxctl(&fluxd, none, &["--unit", "nope", "list-workloads"])).contains("answered 404"));
    assert!(one_line_error(&fluxctl(&fluxd, &[("FLUX_TIMEOUT", "1ns")], &["list-workloads"])).contains("fluxd"));
    let v1_url = format!("{}/api/flux", fluxd.url);
    ok(&fluxctl(&fluxd, &[("FLUX_URL", &v1_url)], &["list-workloads", "-n", "demo"]));

    // Port-forward: the pod found by labels in --k8s-fwd-ns of the real apiserver. There is no
    // kubelet, so the forward itself fails, naming the pod it found.
    let admin = servers.kube.kubeconfig(ADMIN).display().to_string();
    let forward = |extra: &[&str]| {
        let mut args = vec!["--k8s-fwd-ns", "fluxns", "list-workloads"];
        args.extend(extra.iter().copied());
        fluxctl(&fluxd, &[("KUBECONFIG", &admin), ("FLUX_URL", ""), ("FLUX_SERVICE_TOKEN", "")], &args)
    };
    let missing = one_line_error(&forward(&[]));
    assert_eq!(
        missing,
        "Error: No pod found in namespace \"fluxns\" using the following selectors: app=flux; name in \
         (flux,fluxd,weave-flux-agent). Make sure Flux is running in namespace \"fluxns\"; if it runs in another \
         namespace, give it with --k8s-fwd-ns"
    );
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(servers.kube.kubeconfig(ADMIN)).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("config"),
    )
    .expect("a client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "fluxns"}})).expect("ns"))
        .await
        .expect("create ns");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "fluxns");
    accounts
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("sa"))
        .await
        .expect("create sa");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fluxns");
    let running_pod = |name: &'static str, labels: Value| {
        let pods = pods.clone();
        async move {
            let pod = json!({"metadata": {"name": name, "labels": labels},
                "spec": {"automountServiceAccountToken": false, "containers": [{"name": "fluxd", "image": "fluxd"}]}});
            pods.create(&PostParams::default(), &serde_json::from_value(pod).expect("pod")).await.expect("create pod");
            let status = json!({"status": {"phase": "Running"}});
            pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("Running");
        }
    };
    running_pod("fluxd-by-name", json!({"name": "fluxd"})).await;
    let by_fallback = one_line_error(&forward(&[]));
    assert!(
        by_fallback.starts_with("Error: Could not create port forward to pod fluxns/fluxd-by-name: "),
        "{by_fallback}"
    );
    running_pod("fluxd-a", json!({"app": "flux"})).await;
    let by_labels = one_line_error(&forward(&[]));
    assert!(by_labels.starts_with("Error: Could not create port forward to pod fluxns/fluxd-a: "), "{by_labels}");
    running_pod("fluxd-b", json!({"app": "flux"})).await;
    assert_eq!(
        one_line_error(&forward(&[])),
        "Error: Ambiguous pod: found more than one pod for selector: labels \"app=flux\""
    );
    let custom = one_line_error(&forward(&["--k8s-fwd-labels", "app=nothing"]));
    assert!(custom.contains("fluxns/fluxd-by-name"), "the fallback selector after --k8s-fwd-labels: {custom}");
    fluxd.terminate();
}
