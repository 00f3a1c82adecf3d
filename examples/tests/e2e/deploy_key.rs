//! Flux v1's deploy-key Secret, on a real API server and a real sshd: fluxd fills an empty
//! Secret with a generated key, fetches with it, reads it back after a restart, regenerates it
//! through the API, and derives the public half when only the private key is mounted.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_testenv::git::Sshd;
use flux_testenv::kube::ADMIN;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;

use crate::harness::{Fluxd, Servers, TOKEN, example_binary, text};

const SECRET: &str = "flux-git-deploy";

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata: {{a: b}}\n")
}

/// Starts fluxd on the sshd's repository with the deploy key from the Secret mounted at `mount`.
fn start(servers: &Servers, sshd: &Sshd, mount: &Path, keygen: &Path, extra: &[&str]) -> Fluxd {
    let port = flux_testenv::free_port();
    let mut command = Command::new(example_binary("fluxd"));
    command
        .arg(format!("--git-url={}", sshd.url(&servers.repo)))
        .arg(format!("--git-known-hosts={}", sshd.known_hosts().display()))
        .args(["--git-branch=main", "--git-path=deploy", "--git-poll-interval=1h", "--sync-interval=1h"])
        .arg(format!("--kubeconfig={}", servers.kube.kubeconfig(ADMIN).display()))
        .arg(format!("--k8s-secret-volume-mount-path={}", mount.display()))
        .arg(format!("--ssh-keygen-dir={}", keygen.display()))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .args(extra)
        .env("FLUX_API_TOKEN", TOKEN);
    Fluxd::spawn(servers, command, port)
}

/// `GET /api/v1/identity`: the public key and the fingerprint.
async fn identity(fluxd: &Fluxd) -> (String, String) {
    let (code, body) = fluxd.get("/api/v1/identity", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let key = v["public_key"].as_str().unwrap_or_else(|| panic!("no public key: {body}")).to_owned();
    (key, v["fingerprint"].as_str().unwrap_or_default().to_owned())
}

/// `ssh-keygen -l`'s SHA256 fingerprint of a public key line.
fn ssh_keygen_fingerprint(dir: &Path, public: &str) -> String {
    let file = dir.join(format!("fp-{}.pub", flux_testenv::free_port()));
    std::fs::write(&file, format!("{public}\n")).expect("write the key");
    let out = Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(&file).output().expect("ssh-keygen");
    text(&out.stdout).split_whitespace().nth(1).expect("a fingerprint").to_owned()
}

/// The public half of a private key, by `ssh-keygen -y`.
fn public_of(dir: &Path, private: &[u8]) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let file = dir.join(format!("key-{}", flux_testenv::free_port()));
    std::fs::write(&file, private).expect("write the key");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&file).output().expect("ssh-keygen -y");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// The Secret's data keys.
async fn secret_data(secrets: &Api<Secret>) -> std::collections::BTreeMap<String, Vec<u8>> {
    let secret = secrets.get(SECRET).await.expect("the Secret");
    secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()
}

/// Creates the deploy-key Secret, empty (for fluxd to fill).
async fn create_empty_secret(secrets: &Api<Secret>) {
    let empty: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "type": "Opaque"
    }))
    .expect("a Secret");
    secrets.create(&Default::default(), &empty).await.expect("create the empty deploy-key Secret");
}

/// A revision of one ConfigMap, the directory the Secret would be mounted in (empty) and the
/// empty deploy-key Secret; the mount and the Secrets of the namespace.
async fn one_config_map_and_an_empty_secret(servers: &Servers) -> (PathBuf, Api<Secret>) {
    servers.commit(&[("deploy/one.yaml", &config_map("one"))], "one");
    let mount = servers.work.path().join("mount");
    std::fs::create_dir_all(&mount).expect("the mount");
    let client = servers.cluster().await.client().clone();
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    create_empty_secret(&secrets).await;
    (mount, secrets)
}

/// The first words of the key itself (its body), to look for in logs.
fn key_body(private: &[u8]) -> String {
    text(private).lines().nth(1).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_key_secret_is_generated_read_back_regenerated_and_used() {
    let Some(servers) = Servers::start() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let (mount, secrets) = one_config_map_and_an_empty_secret(&servers).await;
    let work = servers.work.path();

    // An empty Secret: fluxd generates an ed25519 key and writes both halves into it.
    let fluxd = start(&servers, &sshd, &mount, &work.join("keygen-1"), &[]);
    let (first, fingerprint) = identity(&fluxd).await;
    assert!(first.starts_with("ssh-ed25519 "), "ed25519 by default: {first}");
    assert_eq!(fingerprint, ssh_keygen_fingerprint(work, &first), "the fingerprint is ssh-keygen -l's");
    let data = secret_data(&secrets).await;
    let private = data.get("identity").expect("the private key in the Secret").clone();
    assert_eq!(public_of(work, &private), first, "the Secret's private key is the key answered");
    assert_eq!(text(&data["identity.pub"]).trim(), first);

    // The source fetches with it: refused until the server lets that key in.
    let refused = fluxd.fluxctl(&["sync"]);
    assert!(!refused.status.success(), "a fetch with a key sshd does not know succeeded");
    sshd.authorize_only(&[&first]);
    fluxd.fluxctl_ok(&["sync"]);
    assert!(servers.get("v1", "default:configmap/one").await.is_some(), "synced over ssh with the generated key");
    assert!(!fluxd.log().contains(&key_body(&private)), "the private key is in fluxd's log");
    fluxd.terminate();

    // A restart (new keygen directory, nothing mounted) reads the key back from the Secret.
    let fluxd = start(&servers, &sshd, &mount, &work.join("keygen-2"), &[]);
    assert_eq!(identity(&fluxd).await.0, first, "the key changed across a restart");

    // Regenerated through the API (fluxctl identity --regenerate): a new key in the Secret and
    // the identity route, used from the next fetch.
    let second = fluxd.fluxctl_ok(&["identity", "--regenerate"]).trim().to_owned();
    assert_ne!(second, first, "regenerate gave the same key");
    assert_eq!(identity(&fluxd).await.0, second);
    let data = secret_data(&secrets).await;
    let regenerated = data["identity"].clone();
    assert_eq!(public_of(work, &regenerated), second, "the Secret holds the new key");
    assert_eq!(text(&data["identity.pub"]).trim(), second);
    sshd.authorize_only(&[&second]);
    servers.commit(&[("deploy/two.yaml", &config_map("two"))], "two");
    fluxd.fluxctl_ok(&["sync"]);
    assert!(servers.get("v1", "default:configmap/two").await.is_some(), "synced with the regenerated key");
    let log = fluxd.log();
    assert!(!log.contains(&key_body(&private)) && !log.contains(&key_body(&regenerated)), "a key in the log");
    fluxd.terminate();

    // Only the private key mounted (no identity.pub): the public half is derived from it, and
    // the mounted key wins over the Secret's (which is left alone).
    let mounted = std::fs::read(sshd.deploy_key()).expect("the deploy key");
    std::fs::write(mount.join("identity"), &mounted).expect("mount the private key");
    let fluxd = start(&servers, &sshd, &mount, &work.join("keygen-3"), &[]);
    let expected = std::fs::read_to_string(format!("{}.pub", sshd.deploy_key().display())).expect("its public half");
    let expected: Vec<&str> = expected.split_whitespace().take(2).collect();
    let (public, _) = identity(&fluxd).await;
    assert_eq!(public.split_whitespace().take(2).collect::<Vec<_>>(), expected, "derived from the mounted key");
    assert_eq!(secret_data(&secrets).await["identity"], regenerated, "the Secret was rewritten");
    fluxd.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_sync_state_is_kept_in_the_deploy_key_secret() {
    let Some(servers) = Servers::start() else { return };
    let head = servers.commit(&[("deploy/ro.yaml", &config_map("ro"))], "read-only");
    let client = servers.cluster().await.client().clone();
    let secrets: Api<Secret> = Api::namespaced(client, "default");

    // --sync-state=secret asked for without the Secret: fluxd stops, naming it.
    let out = servers.fluxd_once(&["--once", "--git-readonly", "--sync-state=secret"]);
    assert!(!out.status.success(), "ran without the Secret its marker goes in");
    assert!(text(&out.stderr).contains(&format!("default/{SECRET}")), "{}", text(&out.stderr));

    create_empty_secret(&secrets).await;

    // --git-readonly forces the Secret state (v1): the sync marker is its annotation, no tag.
    let out = servers.fluxd_once(&["--once", "--git-readonly"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(servers.get("v1", "default:configmap/ro").await.is_some(), "not synced");
    let annotations = secrets.get(SECRET).await.expect("the Secret").metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("flux.weave.works/sync-hwm"), Some(&head), "the marker is the synced revision");
    assert!(servers.repo.git(&["tag", "--list"]).trim().is_empty(), "a tag was pushed to a read-only repository");

    // The next revision moves it; a dry run does not.
    let next = servers.commit(&[("deploy/ro2.yaml", &config_map("ro2"))], "next");
    assert_eq!(servers.fluxd_once(&["--git-readonly", "--dry-run"]).status.code(), Some(1), "a change to plan");
    let marker = |s: Secret| s.metadata.annotations.unwrap_or_default().get("flux.weave.works/sync-hwm").cloned();
    assert_eq!(marker(secrets.get(SECRET).await.expect("Secret")), Some(head), "a dry run moved the marker");
    assert!(servers.fluxd_once(&["--once", "--sync-state=secret", "--git-readonly"]).status.success());
    assert_eq!(marker(secrets.get(SECRET).await.expect("Secret")), Some(next));
    assert!(servers.repo.git(&["tag", "--list"]).trim().is_empty(), "a tag was pushed");
}

/// Replicas starting together on one empty Secret (`fluxctl install --replicas=N` with the
/// Secret left for fluxd to fill) end up with one key: each writes its generated key only if
/// the Secret is still as it read it; a replica that loses takes the key written first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_on_one_empty_secret_share_one_generated_key() {
    let Some(servers) = Servers::start() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let (mount, secrets) = one_config_map_and_an_empty_secret(&servers).await;
    let work = servers.work.path();

    let replicas: Vec<Fluxd> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..3)
            .map(|i| {
                let (servers, sshd, mount) = (&servers, &sshd, &mount);
                let keygen = work.join(format!("keygen-replica-{i}"));
                scope.spawn(move || start(servers, sshd, mount, &keygen, &[]))
            })
            .collect();
        started.into_iter().map(|s| s.join().expect("a replica started")).collect()
    });
    let data = secret_data(&secrets).await;
    let in_secret = public_of(work, data.get("identity").expect("a key in the Secret"));
    assert_eq!(text(&data["identity.pub"]).trim(), in_secret, "the Secret's halves match");
    for fluxd in &replicas {
        assert_eq!(identity(fluxd).await.0, in_secret, "every replica uses the Secret's key");
    }
    let took_over = replicas.iter().filter(|f| f.log().contains("another replica wrote one")).count();
    eprintln!("{took_over} of 3 replicas took the key another wrote first");
    sshd.authorize_only(&[&in_secret]);
    for fluxd in &replicas {
        fluxd.fluxctl_ok(&["sync"]);
    }
    for fluxd in replicas {
        fluxd.terminate();
    }
}

/// With high availability, a key regenerated through one replica is put in use by the others
/// (each reads the shared Secret every few seconds), so every replica keeps fetching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_regenerated_through_one_replica_is_used_by_the_others() {
    let Some(servers) = Servers::start() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let (mount, secrets) = one_config_map_and_an_empty_secret(&servers).await;
    let work = servers.work.path();
    let replica = |i: usize| {
        let id = format!("--ha-replica-id=key-replica-{i}");
        let flags = ["--ha-namespace=default", id.as_str(), "--ha-lease-duration=5s"];
        start(&servers, &sshd, &mount, &work.join(format!("keygen-ha-{i}")), &flags)
    };
    let (a, b) = (replica(0), replica(1));
    let first = identity(&a).await.0;
    assert_eq!(identity(&b).await.0, first, "both replicas use the Secret's key");

    let second = a.fluxctl_ok(&["identity", "--regenerate"]).trim().to_owned();
    assert_ne!(second, first);
    let data = secret_data(&secrets).await;
    assert_eq!(public_of(work, &data["identity"]), second, "the Secret holds the new key");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + crate::harness::PATIENCE;
    while seen != second {
        assert!(tokio::time::Instant::now() < deadline, "the other replica still uses {seen}, not {second}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        seen = identity(&b).await.0;
    }
    assert!(b.log().contains("regenerated by another replica"), "the other replica says so");
    assert!(!b.log().contains(&key_body(&data["identity"])), "the private key is in the log");
    sshd.authorize_only(&[&second]);
    for fluxd in [&a, &b] {
        fluxd.fluxctl_ok(&["sync"]);
    }
    assert!(servers.get("v1", "default:configmap/one").await.is_some(), "synced with the regenerated key");
    a.terminate();
    b.terminate();
}
