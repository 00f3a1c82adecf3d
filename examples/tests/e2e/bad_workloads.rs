//! A workload that cannot be read spoils nothing for the others, an ignored one is left alone,
//! and a broken head is listed from the last usable revision: real git daemon, docker-registry,
//! kube-apiserver, the built fluxd and fluxctl.

use flux_testenv::wait_until;
use serde_json::Value;

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, text};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

fn deployment(name: &str, annotations: &[(&str, &str)], containers: &[(&str, &str)]) -> String {
    let notes: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let notes = if notes.is_empty() { String::new() } else { format!("  annotations:\n{notes}") };
    let containers: String =
        containers.iter().map(|(n, image)| format!("      - name: {n}\n        image: {image}\n")).collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: crew\n{notes}spec:\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: \
         {name}\n    spec:\n      containers:\n{containers}"
    )
}

/// `text` without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// `fluxctl list-workloads -n crew -o json`: the list, and what fluxctl said on stderr.
fn listed(fluxd: &Fluxd) -> (Vec<Value>, String) {
    let out = fluxd.fluxctl(&["list-workloads", "-n", "crew", "-o", "json"]);
    assert!(out.status.success(), "list-workloads failed: {}", text(&out.stderr));
    (serde_json::from_slice(&out.stdout).expect("a JSON list"), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_workload_spoils_nothing_and_a_broken_head_is_listed_from_the_last_usable_revision() {
    let Some(servers) = Servers::start() else { return };
    let reg = servers.registry.host().to_owned();
    servers.push("crew/app:1.0.0", T1).await;
    servers.push("crew/app:1.1.0", T2).await;
    let app = format!("{reg}/crew/app");
    let (v1, v2) = (format!("{app}:1.0.0"), format!("{app}:1.1.0"));
    let bad_image = format!("{reg}/Crew/App:1.0");
    let automated = [("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:~1")];
    let files = [
        ("deploy/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: crew\n".to_owned()),
        ("deploy/good.yaml", deployment("good", &automated, &[("app", &v1)])),
        ("deploy/bad.yaml", deployment("bad", &automated, &[("app", &v1), ("side", &bad_image)])),
        (
            "deploy/ignored.yaml",
            deployment("ignored", &[("fluxcd.io/automated", "true"), ("fluxcd.io/ignore", "true")], &[("app", &v1)]),
        ),
        // Once automated, its filter keeps it where it is: no further commit.
        ("deploy/other.yaml", deployment("other", &[("fluxcd.io/tag.app", "semver:<1.1")], &[("app", &v1)])),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let start = servers.commit(&refs, "A crew with one bad workload");

    // Automation moves the good workload, alone, in one commit.
    let fluxd = Fluxd::start(
        &servers,
        &["--git-poll-interval=1s", "--sync-interval=2s", "--automation-interval=2s", "--sync-garbage-collection"],
    );
    let automated_head = servers.wait_for_commit(&start);
    assert_eq!(
        servers.changed_lines(&start, &automated_head),
        format!("--- a/deploy/good.yaml\n+++ b/deploy/good.yaml\n-        image: {v1}\n+        image: {v2}\n"),
        "only the good workload is automated: not the bad one (not even its readable container), not the ignored one"
    );
    assert!(
        wait_until(PATIENCE, || fluxd.log().contains("automation skipped a workload")),
        "the automation pass reports what it skipped:\n{}",
        fluxd.log()
    );
    let log = plain(&fluxd.log());
    assert!(log.contains("workload=crew:deployment/bad reason=deploy/bad.yaml:1:"), "{log}");
    assert!(log.contains("workload=crew:deployment/ignored reason=ignore"), "{log}");

    // The bad workload is listed, with the raw image and the error naming file, line, workload, container.
    let (list, warning) = listed(&fluxd);
    assert!(warning.is_empty(), "a usable head: no warning: {warning}");
    let bad = list.iter().find(|w| w["id"] == "crew:deployment/bad").expect("the bad workload is listed");
    let error = bad["error"].as_str().expect("its error");
    assert!(
        error.starts_with("deploy/bad.yaml:1: crew:deployment/bad: container side: invalid image reference"),
        "{error}"
    );
    let side = bad["containers"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == "side")).expect("side");
    assert_eq!(side["image"], bad_image.as_str(), "the image as written");
    assert!(side["error"].as_str().is_some_and(|e| e.contains("container side")), "{side}");
    let good = list.iter().find(|w| w["id"] == "crew:deployment/good").expect("the good workload");
    assert!(good.get("error").is_none(), "no error field on a good workload: {good}");
    let table = fluxd.fluxctl_ok(&["list-workloads", "-n", "crew"]);
    assert!(table.contains(&bad_image), "{table}");
    assert!(table.contains("error: deploy/bad.yaml:1: crew:deployment/bad: container side:"), "{table}");
    let images = fluxd.fluxctl_ok(&["list-images", "-w", "crew:deployment/bad"]);
    assert!(images.contains("'-> 1.0.0") && images.contains("error: deploy/bad.yaml:1:"), "{images}");

    // A policy change of another workload works; the bad one is refused by name.
    let out = fluxd.fluxctl(&["automate", "-w", "crew:deployment/other"]);
    assert!(out.status.success() && text(&out.stderr).contains("Commit pushed"), "{out:?}");
    let policy_head = servers.repo.head();
    assert!(servers.changed_lines(&automated_head, &policy_head).contains("+    fluxcd.io/automated: \"true\""));
    let refused = fluxd.fluxctl(&["lock", "-w", "crew:deployment/bad"]);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(
        said.contains("deploy/bad.yaml:1: crew:deployment/bad cannot be changed until its manifest is fixed"),
        "{said}"
    );
    let released = fluxd.fluxctl(&["release", "--workload", "crew:deployment/bad", "-i", &v2]);
    assert!(!released.status.success(), "a release of the bad workload fails");
    assert!(
        text(&released.stderr).contains("crew:deployment/bad failed: deploy/bad.yaml:1:"),
        "{}",
        text(&released.stderr)
    );
    // As Flux v1: skipped workloads are listed with -v.
    let ignored = fluxd.fluxctl_ok(&["release", "--workload", "crew:deployment/ignored", "-i", &v2, "-v"]);
    assert!(
        ignored.lines().any(|l| l.split_whitespace().eq(["crew:deployment/ignored", "skipped", "ignore"])),
        "{ignored}"
    );
    assert_eq!(servers.repo.head(), policy_head, "refusals commit nothing");

    // Wait for the sync marker to reach the last usable revision, then break the head.
    assert!(
        wait_until(PATIENCE, || servers.repo.git(&["tag", "--points-at", &policy_head]).contains("flux-sync")),
        "the policy commit was not synced"
    );
    let broken =
        servers.commit(&[("deploy/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n")], "Break it");
    let mut warning = String::new();
    assert!(
        wait_until(PATIENCE, || {
            warning = listed(&fluxd).1;
            !warning.is_empty()
        }),
        "fluxctl never said that the head is broken"
    );
    let short = |rev: &str| rev[..7].to_owned();
    assert!(
        warning.starts_with(&format!(
            "warning: the head {} is unusable, listing {}",
            short(&broken),
            short(&policy_head)
        )),
        "{warning}"
    );
    assert!(warning.contains("deploy/broken.yaml"), "the head's error: {warning}");
    let (list, _) = listed(&fluxd);
    assert!(list.iter().any(|w| w["id"] == "crew:deployment/other" && w["policies"]["automated"] == true), "{list:?}");
    let (status, body) = fluxd.get("/api/v1/status", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(status["head_error"]["revision"], broken.as_str(), "{status}");

    // Writes refuse the broken head with its error and write nothing.
    let refused = fluxd.fluxctl(&["deautomate", "-w", "crew:deployment/other"]);
    assert!(
        !refused.status.success() && text(&refused.stderr).contains("deploy/broken.yaml"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(servers.repo.head(), broken, "nothing written on a broken head");

    // After a restart (nothing remembered), the listing comes from the sync marker's revision.
    fluxd.terminate();
    let fluxd = Fluxd::start(&servers, &["--git-poll-interval=1h", "--sync-interval=1h", "--automation-interval=1h"]);
    let (list, warning) = listed(&fluxd);
    assert!(warning.contains(&format!("listing {}", short(&policy_head))), "{warning}");
    assert!(list.iter().any(|w| w["id"] == "crew:deployment/good"), "{list:?}");
    fluxd.terminate();
}
