//! One fluxd, three units from a config file: two repositories, one of them with two units on
//! different paths. All synced, automated and released through `fluxctl --unit`; GC in one unit
//! leaves the others' objects; one repository made unreachable while the others go on.

use std::process::Command;

use flux_testenv::git::{BareRepo, GitDaemon};
use flux_testenv::kube::ADMIN;
use flux_testenv::{free_port, wait_until};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary, text};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

fn deployment(name: &str, image: &str, automated: bool) -> String {
    let annotations = if automated { "  annotations:\n    fluxcd.io/automated: \"true\"\n" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n{annotations}spec:\n  \
         selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      \
         containers:\n      - name: app\n        image: {image}\n"
    )
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata: {{a: b}}\n")
}

/// Whether the object `id` is in the cluster.
async fn present(servers: &Servers, api_version: &str, id: &str) -> bool {
    servers.get(api_version, id).await.is_some()
}

/// Waits until every object of `ids` is present (`true`) or absent (`false`).
async fn wait_for(servers: &Servers, api_version: &str, ids: &[&str], want: bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut all = true;
        for id in ids {
            all &= present(servers, api_version, id).await == want;
        }
        if all {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_units_from_a_config_file_each_synced_automated_released_and_collected_alone() {
    let Some(servers) = Servers::start() else { return };
    let Some(blog_repo) = BareRepo::new() else { return };
    let Some(blog_daemon) = GitDaemon::start(&blog_repo) else { return };
    let reg = servers.registry.host().to_owned();
    servers.push("shop/app:1.0.0", T1).await;
    let image = format!("{reg}/shop/app");
    let v1 = format!("{image}:1.0.0");
    servers.commit(
        &[
            ("prod/app.yaml", &deployment("prod-app", &v1, false)),
            ("prod/extra.yaml", &config_map("prod-extra")),
            ("staging/app.yaml", &deployment("staging-app", &v1, false)),
            ("staging/extra.yaml", &config_map("staging-extra")),
        ],
        "The shop, prod and staging",
    );
    let blog_files =
        [("deploy/app.yaml", deployment("blog-app", &v1, false)), ("deploy/extra.yaml", config_map("blog-extra"))];
    let blog_files: Vec<(&str, &[u8])> = blog_files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
    blog_repo.commit_files(&blog_files, "The blog");

    let config = servers.work.path().join("fluxd.yaml");
    let kubeconfig = servers.kube.kubeconfig(ADMIN);
    let shop_url = servers.git_daemon.url();
    let blog_url = blog_daemon.url();
    let unit = |name: &str, url: &str, path: &str| {
        format!(
            "- name: {name}\n  git-url: {url}\n  git-branch: main\n  git-path: [{path}]\n  git-poll-interval: 1s\n  sync-interval: 2s\n  \
             automation-interval: 2s\n  sync-garbage-collection: true\n  git-user: Flux Bot\n  git-email: bot@flux.invalid\n"
        )
    };
    let text_config = format!(
        "kubeconfig: {}\nregistry-insecure-host: [{reg}]\nunits:\n{}{}{}",
        kubeconfig.display(),
        unit("shop", &shop_url, "prod"),
        unit("shop-staging", &shop_url, "staging"),
        unit("blog", &blog_url, "deploy"),
    );
    std::fs::write(&config, text_config).expect("write the config");

    // A typo is refused with its line, before anything starts.
    let typo = servers.work.path().join("typo.yaml");
    std::fs::write(&typo, "units:\n- name: a\n  git-url: x\n  git-pth: [y]\n").expect("write");
    let out = Command::new(example_binary("fluxd")).arg(format!("--config={}", typo.display())).output().expect("run");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("typo.yaml:4: unknown key \"git-pth\""), "{}", text(&out.stderr));

    let port = free_port();
    let mut command = Command::new(example_binary("fluxd"));
    command
        .arg(format!("--config={}", config.display()))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--git-mirror-dir={}", servers.work.path().join("mirrors").display()))
        .env("FLUX_API_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    let fluxd = Fluxd::spawn(&servers, command, port);

    // All three units synced, each its own path.
    let apps = ["default:deployment/prod-app", "default:deployment/staging-app", "default:deployment/blog-app"];
    assert!(wait_for(&servers, "apps/v1", &apps, true).await, "not all units synced:\n{}", fluxd.log());
    let extras = ["default:configmap/prod-extra", "default:configmap/staging-extra", "default:configmap/blog-extra"];
    assert!(wait_for(&servers, "v1", &extras, true).await, "{}", fluxd.log());

    // fluxctl needs --unit with several units, and then sees that unit only.
    let out = fluxd.fluxctl(&["list-workloads", "-a"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("blog, shop, shop-staging"), "the error names the units: {}", text(&out.stderr));
    let shop = fluxd.fluxctl_ok(&["--unit", "shop", "list-workloads", "-a"]);
    assert!(shop.contains("prod-app") && !shop.contains("staging-app") && !shop.contains("blog-app"), "{shop}");
    let out = fluxd.fluxctl(&["--unit", "news", "list-workloads", "-a"]);
    assert!(!out.status.success() && text(&out.stderr).contains("no unit \"news\""), "{}", text(&out.stderr));

    // Automation in shop-staging only: turned on through fluxctl, then a new tag is committed to
    // staging's manifest; prod, on the same repository, is left alone.
    let before = servers.repo.head();
    fluxd.fluxctl_ok(&["--unit", "shop-staging", "automate", "-w", "default:deployment/staging-app"]);
    servers.wait_for_commit(&before);
    servers.push("shop/app:1.1.0", T2).await;
    let v2 = format!("{image}:1.1.0");
    assert!(
        wait_until(PATIENCE, || {
            let staging = servers.repo.git(&["show", "main:staging/app.yaml"]);
            staging.contains(&v2)
        }),
        "automation did not update staging:\n{}",
        fluxd.log()
    );
    let prod = servers.repo.git(&["show", "main:prod/app.yaml"]);
    assert!(prod.contains(&v1), "prod is not automated: {prod}");
    let message = servers.repo.git(&["log", "-1", "--format=%B", "--", "staging/app.yaml"]);
    assert!(message.contains("Flux-Change: automation") && message.contains("Flux-Job: "), "{message}");

    // A release in blog, through fluxctl: a commit to the blog's repository with its job.
    let before = blog_repo.head();
    fluxd.fluxctl_ok(&["--unit", "blog", "release", "--workload", "default:deployment/blog-app", "-i", &v2]);
    assert_ne!(blog_repo.head(), before, "the release committed");
    let message = blog_repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Flux-Change: release") && message.contains("Flux-Job: "), "{message}");
    assert!(servers.repo.git(&["show", "main:prod/app.yaml"]).contains(&v1), "the shop is untouched");

    // GC in shop: prod's ConfigMap leaves git and the cluster; staging's and the blog's stay.
    servers.delete("prod/extra.yaml", "Drop prod's extra");
    assert!(wait_for(&servers, "v1", &["default:configmap/prod-extra"], false).await, "{}", fluxd.log());
    assert!(present(&servers, "v1", "default:configmap/staging-extra").await, "GC in shop pruned shop-staging's");
    assert!(present(&servers, "v1", "default:configmap/blog-extra").await, "GC in shop pruned the blog's");

    // The blog's repository goes away; the shop's units go on.
    let gone = blog_repo.path().with_extension("gone");
    std::fs::rename(blog_repo.path(), &gone).expect("move the blog's repository away");
    servers.commit(&[("staging/later.yaml", &config_map("staging-later"))], "Later");
    assert!(wait_for(&servers, "v1", &["default:configmap/staging-later"], true).await, "{}", fluxd.log());
    assert!(
        wait_until(PATIENCE, || fluxd
            .log()
            .lines()
            .any(|l| (l.contains("git fetch failed") || l.contains("sync failed")) && l.contains("\"blog\""))),
        "the blog's failing fetch is logged with its unit:\n{}",
        fluxd.log()
    );
    assert!(present(&servers, "v1", "default:configmap/blog-extra").await, "an unreachable repository prunes nothing");
    let status = fluxd.fluxctl_ok(&["--unit", "shop", "list-workloads", "-a"]);
    assert!(status.contains("prod-app"), "{status}");
    fluxd.terminate();
    drop(blog_daemon);
}
