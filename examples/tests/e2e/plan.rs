//! The diff plan and the prune guard with the real fluxd and fluxctl, on a real git daemon and
//! kube-apiserver: `fluxd --dry-run` of an unchanged revision says "no changes" (exit 0); of a
//! changed replica count it shows that one field (exit 1), as text and Markdown, and
//! `POST /api/v1/plan` agrees; removing most objects from git is held by the guard until
//! `fluxctl sync --allow-prune`; `--dry-run-branch` plans another branch under the unit's
//! identity; automation's update and the diff of its commit are in the plan, made nowhere.

use crate::harness::{Fluxd, PATIENCE, Servers, text};

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: plan\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      \
         containers:\n      - name: app\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n"
    )
}

fn config_maps(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c-{i:02}\n  namespace: plan\ndata: {{a: b}}\n"
            )
        })
        .collect()
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: plan\n";

/// The field lines under `apply <id> (...)` in a text plan.
fn field_lines(plan: &str, id: &str) -> Vec<String> {
    let header = format!("  apply {id} ");
    plan.lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_one_changed_field_and_the_guard_holds_until_allowed() {
    let Some(servers) = Servers::start() else { return };
    let files = [
        ("deploy/namespace.yaml", NAMESPACE.to_owned()),
        ("deploy/web.yaml", deployment(1)),
        ("deploy/config.yaml", config_maps(12)),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let first = servers.commit(&refs, "the app");
    let flags = ["--registry-disable-scanning", "--sync-garbage-collection"];
    let once = servers.fluxd_once(&[&flags[..], &["--once"]].concat());
    assert!(once.status.success(), "{}", text(&once.stdout));

    // Unchanged: no changes, exit 0.
    let same = servers.fluxd_once(&[&flags[..], &["--dry-run"]].concat());
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    assert!(text(&same.stdout).ends_with("no changes\n"), "{}", text(&same.stdout));

    // A daemon that fetches and syncs only when asked once its sync at start is done (ready),
    // so that what it plans below is not synced under the plan's feet.
    let idle = ["--git-poll-interval=1h", "--sync-interval=1h"];
    let fluxd = Fluxd::start(&servers, &[&flags[..], &idle[..]].concat());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fluxd.get("/readyz", None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "fluxd never synced:\n{}", fluxd.log());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A changed replica count: that one field, nothing else; exit 1; nothing written.
    servers.commit(&[("deploy/web.yaml", &deployment(3))], "scale");
    let scaled = servers.fluxd_once(&[&flags[..], &["--dry-run"]].concat());
    let out = text(&scaled.stdout);
    assert_eq!(scaled.status.code(), Some(1), "{out}");
    assert!(out.contains("  apply plan:deployment/web (update)\n"), "{out}");
    assert_eq!(field_lines(&out, "plan:deployment/web"), ["spec.replicas: 1 -> 3"], "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("  apply ")).count(), 1, "only the Deployment: {out}");
    let markdown = servers.fluxd_once(&[&flags[..], &["--dry-run", "--dry-run-format=markdown"]].concat());
    let md = text(&markdown.stdout);
    assert_eq!(markdown.status.code(), Some(1));
    assert!(md.contains("```diff\n- spec.replicas: 1\n+ spec.replicas: 3\n```"), "{md}");
    let live = servers.get("apps/v1", "plan:deployment/web").await.expect("the Deployment");
    assert_eq!(live.to_value()["spec"]["replicas"], 1, "a dry run applied something");

    // The API's plan agrees (it fetches the head itself); the daemon then syncs it.
    let (status, body) = fluxd.post("/api/v1/plan", &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    let plan: flux_api::v1::Plan = serde_json::from_str(&body).expect("a plan");
    assert!(plan.has_changes && plan.ok, "{body}");
    let fields: Vec<String> =
        plan.objects.iter().flat_map(|o| o.fields.iter().map(move |f| format!("{} {}", o.id, f.path))).collect();
    assert_eq!(fields, ["plan:deployment/web spec.replicas"], "{body}");
    assert!(plan.markdown.contains("+ spec.replicas: 3"), "{body}");
    let (status, body) = fluxd.post("/api/v1/plan", &serde_json::json!({"branch": "other"})).await;
    assert_eq!(status, 400, "another branch: {body}");
    fluxd.fluxctl_ok(&["sync"]);
    let (_, body) = fluxd.post("/api/v1/plan", &serde_json::json!({})).await;
    let plan: flux_api::v1::Plan = serde_json::from_str(&body).expect("a plan");
    assert!(!plan.has_changes && plan.ok, "synced: {body}");
    // An older revision of the branch: going back to it would scale down, nothing else.
    let (status, body) = fluxd.post("/api/v1/plan", &serde_json::json!({"revision": first})).await;
    assert_eq!(status, 200, "{body}");
    let plan: flux_api::v1::Plan = serde_json::from_str(&body).expect("a plan");
    assert_eq!(plan.revision, first);
    let fields: Vec<String> = plan.objects.iter().flat_map(|o| o.fields.iter().map(|f| f.path.clone())).collect();
    assert_eq!(fields, ["spec.replicas"], "{body}");
    assert!(plan.text.contains("spec.replicas: 3 -> 1"), "{body}");
    let unknown = "0123456789012345678901234567890123456789";
    let (status, body) = fluxd.post("/api/v1/plan", &serde_json::json!({"revision": unknown})).await;
    assert_eq!(status, 404, "{body}");

    // 12 of the 14 objects leave git: the guard holds them until allowed once.
    servers.commit(&[("deploy/config.yaml", "")], "drop the config maps");
    let held = fluxd.fluxctl(&["sync"]);
    let stderr = text(&held.stderr);
    assert!(!held.status.success(), "{stderr}");
    assert!(stderr.contains("prune guard: not pruning 12 of the 14 objects"), "{stderr}");
    assert!(servers.get("v1", "plan:configmap/c-00").await.is_some(), "deleted while held");
    fluxd.fluxctl_ok(&["sync", "--allow-prune"]);
    for i in 0..12 {
        assert!(servers.get("v1", &format!("plan:configmap/c-{i:02}")).await.is_none(), "c-{i:02} still there");
    }
    assert!(servers.get("v1", "<cluster>:namespace/plan").await.is_some());
    fluxd.terminate();

    // A pull request's branch is planned under the unit's identity (--git-branch's): `pr` is
    // what the cluster runs, so no changes; `main` moved on, so its plan has the change.
    servers.repo.git(&["branch", "pr", "main"]);
    servers.commit(&[("deploy/web.yaml", &deployment(5))], "scale again");
    let pr = servers.fluxd_once(&[&flags[..], &["--dry-run", "--dry-run-branch=pr"]].concat());
    assert_eq!(pr.status.code(), Some(0), "{}", text(&pr.stdout));
    assert!(text(&pr.stdout).ends_with("no changes\n"), "{}", text(&pr.stdout));
    let main = servers.fluxd_once(&[&flags[..], &["--dry-run"]].concat());
    assert_eq!(main.status.code(), Some(1));
    assert_eq!(field_lines(&text(&main.stdout), "plan:deployment/web"), ["spec.replicas: 3 -> 5"]);
    let alone = servers.fluxd_once(&[&flags[..], &["--once", "--dry-run-branch=pr"]].concat());
    assert_eq!(alone.status.code(), Some(2), "--dry-run-branch needs --dry-run");

    // Automation's part of the plan: the update it would make and the diff of its commit, made
    // nowhere.
    let reg = servers.registry.host().to_owned();
    servers.push("plan/auto:1.0.0", "2024-01-01T00:00:00Z").await;
    servers.push("plan/auto:1.1.0", "2024-02-01T00:00:00Z").await;
    let auto = deployment(1)
        .replace("name: web", "name: auto")
        .replace("{app: web}", "{app: auto}")
        .replace(
            "metadata:\n  name: auto\n",
            "metadata:\n  name: auto\n  annotations:\n    fluxcd.io/automated: \"true\"\n",
        )
        .replace("nginx:1.25", &format!("{reg}/plan/auto:1.0.0"));
    let head = servers.commit(&[("deploy/auto.yaml", &auto)], "an automated workload");
    let planned = servers.fluxd_once(&["--sync-garbage-collection", "--dry-run"]);
    let out = text(&planned.stdout);
    assert_eq!(planned.status.code(), Some(1), "{out}");
    assert!(out.contains("  apply plan:deployment/auto (create)\n"), "{out}");
    assert!(
        out.contains(&format!(
            "automation would update plan:deployment/auto (app): {reg}/plan/auto:1.0.0 -> {reg}/plan/auto:1.1.0"
        )),
        "{out}"
    );
    let diff = format!(
        "--- deploy/auto.yaml\n+++ deploy/auto.yaml\n-        image: {reg}/plan/auto:1.0.0\n+        image: {reg}/plan/auto:1.1.0\n"
    );
    assert!(out.contains("automation would commit \"") && out.contains(&diff), "{out}");
    assert_eq!(servers.repo.head(), head, "a dry run committed");
    assert!(servers.get("apps/v1", "plan:deployment/auto").await.is_none(), "a dry run applied something");
}
