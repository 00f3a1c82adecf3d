//! High availability (`fluxd --ha-namespace`), all real: kube-apiserver with its audit log, the
//! git daemon, and several `fluxd` processes sharing one config file of units, each replica with
//! its own ServiceAccount token so the audit log tells them apart. A colleague commits to every
//! unit every few seconds, so every owner writes all the time.
//!
//! - Three replicas, thirty units (thirty paths of one repository): every unit is written by
//!   exactly one replica; a fourth joins and a bounded number of units moves; the replica owning
//!   most units is killed (`kill -9`) and its units are synced by the others within the lease
//!   duration plus one sync interval; another is stopped (SIGTERM) and its units are handed
//!   over, by release, not expiry. Over the whole run, the audit log shows for every unit
//!   writers one after another, each starting only after taking the unit's Lease.
//! - A replica whose connection to the API server goes through a proxy that is then blocked
//!   (a partition) stops writing for its units before the other takes them, says so, refuses
//!   writes; healed, it takes a share again, never writing beside the other.
//! - Writes sent to the replica that does not own the unit (`fluxctl lock`, `POST /sync`,
//!   `/suspend`, `/resume`) are forwarded to the owner, which does them (the commit, its apply
//!   in the audit log, its answer); the job the owner queued, and the unit's status, are found
//!   through the other replica.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flux_testenv::git::{BareRepo, GitDaemon};
use flux_testenv::kube::ADMIN;
use flux_testenv::{KubeApiServer, free_port, wait_until};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::Value;

use crate::harness::{PATIENCE, TOKEN, example_binary};

/// Where the Leases (and the replicas' ServiceAccounts) are.
const HA_NAMESPACE: &str = "flux-ha";
/// The test's lease duration and sync interval (short, to keep the test short).
const LEASE: Duration = Duration::from_secs(5);
const SYNC_INTERVAL: Duration = Duration::from_secs(20);

/// The audit log's user name of replica `id`.
fn user_of(id: &str) -> String {
    format!("system:serviceaccount:{HA_NAMESPACE}:{id}")
}

/// The servers of one test.
struct Env {
    kube: KubeApiServer,
    repo: Arc<Mutex<BareRepo>>,
    git: GitDaemon,
    work: tempfile::TempDir,
}

impl Env {
    fn start() -> Option<Self> {
        let kube = KubeApiServer::start()?;
        let repo = BareRepo::new()?;
        let git = GitDaemon::start(&repo)?;
        let work = tempfile::tempdir().expect("a work directory");
        Some(Env { kube, repo: Arc::new(Mutex::new(repo)), git, work })
    }

    async fn admin(&self) -> kube::Client {
        let cluster = flux_k8s::KubeCluster::from_kubeconfig(&self.kube.kubeconfig(ADMIN), Default::default())
            .await
            .expect("admin client");
        cluster.client().clone()
    }

    /// The namespace, a ServiceAccount per replica with a token, all cluster-admin.
    async fn accounts(&self, ids: &[&str]) -> BTreeMap<String, String> {
        let client = self.admin().await;
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(HA_NAMESPACE.into()), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta { name: Some("flux-ha-replicas".into()), ..Default::default() },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "cluster-admin".into(),
            },
            subjects: Some(vec![Subject {
                kind: "Group".into(),
                name: format!("system:serviceaccounts:{HA_NAMESPACE}"),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Default::default()
            }]),
        };
        Api::<ClusterRoleBinding>::all(client.clone()).create(&PostParams::default(), &binding).await.expect("binding");
        let accounts: Api<ServiceAccount> = Api::namespaced(client, HA_NAMESPACE);
        let mut tokens = BTreeMap::new();
        for id in ids {
            let sa = ServiceAccount {
                metadata: ObjectMeta { name: Some((*id).into()), ..Default::default() },
                ..Default::default()
            };
            accounts.create(&PostParams::default(), &sa).await.expect("service account");
            let request = TokenRequest {
                spec: TokenRequestSpec { expiration_seconds: Some(7200), ..Default::default() },
                ..Default::default()
            };
            let token = accounts.create_token_request(id, &PostParams::default(), &request).await.expect("token");
            tokens.insert((*id).to_owned(), token.status.expect("a token").token);
        }
        tokens
    }

    /// A kubeconfig for `token` to the API server at `server`.
    fn kubeconfig(&self, name: &str, server: &str, token: &str) -> PathBuf {
        let ca = self.kube.dir().join("certs").join("apiserver.crt");
        let path = self.work.path().join(format!("kubeconfig-{name}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: test\n    user: {name}\n\
             current-context: {name}\n",
            ca = ca.display()
        );
        std::fs::write(&path, text).expect("write a kubeconfig");
        path
    }

    /// The config file of `units`, each syncing its own path of the repository.
    fn config(&self, units: &[String]) -> PathBuf {
        let url = self.git.url();
        let mut text = String::from("units:\n");
        for unit in units {
            text.push_str(&format!(
                "- name: {unit}\n  git-url: {url}\n  git-branch: main\n  git-path: [{unit}]\n  git-poll-interval: 5s\n  \
                 sync-interval: {}s\n  registry-disable-scanning: true\n",
                SYNC_INTERVAL.as_secs()
            ));
        }
        let path = self.work.path().join("fluxd.yaml");
        std::fs::write(&path, text).expect("write the config");
        path
    }

    /// Commits every unit's ConfigMap at revision `rev`.
    fn commit(&self, units: &[String], rev: &str) {
        commit_all(&self.repo, units, rev);
    }

    /// Commits every few seconds until the returned flag is set.
    fn colleague(&self, units: &[String]) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        let (repo, units, done) = (self.repo.clone(), units.to_vec(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(4));
                n += 1;
                commit_all(&repo, &units, &format!("tick-{n}"));
            }
        });
        stop
    }

    fn audit(&self) -> Vec<Request> {
        self.kube.audit_log().lines().filter_map(Request::parse).collect()
    }
}

fn commit_all(repo: &Mutex<BareRepo>, units: &[String], rev: &str) {
    let files: Vec<(String, String)> = units
        .iter()
        .map(|u| {
            let cm = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{u}\n  namespace: default\ndata:\n  rev: \"{rev}\"\n"
            );
            (format!("{u}/cm.yaml"), cm)
        })
        .collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())).collect();
    repo.lock().unwrap_or_else(|p| p.into_inner()).commit_files(&files, &format!("rev {rev}"));
}

/// One completed request of the audit log.
#[derive(Debug, Clone)]
struct Request {
    user: String,
    verb: String,
    resource: String,
    name: String,
    received: jiff::Timestamp,
    completed: jiff::Timestamp,
}

impl Request {
    fn parse(line: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["stage"] != "ResponseComplete" {
            return None;
        }
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Some(Request {
            user: text("/user/username")?,
            verb: text("/verb")?,
            resource: text("/objectRef/resource").unwrap_or_default(),
            name: text("/objectRef/name").unwrap_or_default(),
            received: text("/requestReceivedTimestamp")?.parse().ok()?,
            completed: text("/stageTimestamp")?.parse().ok()?,
        })
    }

    fn is_write(&self) -> bool {
        ["create", "update", "patch", "delete"].contains(&self.verb.as_str())
    }
}

/// The writes of `unit`'s ConfigMap, by replicas, in the order the server received them.
fn object_writes<'a>(audit: &'a [Request], unit: &str) -> Vec<&'a Request> {
    object_writes_of(audit, "configmaps", &format!("cm-{unit}"))
}

/// Checks that `unit`'s writers follow one another: each run of one replica's writes ends
/// (completes) before the next replica's begins (is received), and the next replica wrote the
/// unit's Lease in between (it took the Lease after the last write of the one before).
fn assert_one_writer_at_a_time(audit: &[Request], unit: &str) -> usize {
    let writes = object_writes(audit, unit);
    let lease = format!("flux-unit-{unit}");
    let mut switches = 0;
    for pair in writes.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.user == b.user {
            continue;
        }
        switches += 1;
        assert!(
            a.completed <= b.received,
            "unit {unit}: {} wrote until {} but {} began at {}: two writers at once",
            a.user,
            a.completed,
            b.user,
            b.received
        );
        let took = audit.iter().any(|r| {
            r.is_write()
                && r.resource == "leases"
                && r.name == lease
                && r.user == b.user
                && r.received >= a.completed
                && r.completed <= b.received
        });
        assert!(
            took,
            "unit {unit}: {} wrote at {} without taking the Lease after {}'s last write",
            b.user, b.received, a.user
        );
    }
    switches
}

/// A running fluxd replica, killed when dropped.
struct Replica {
    id: String,
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os("FLUX_HA_KEEP_LOGS") {
            let test = self
                .log
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::fs::copy(&self.log, Path::new(&dir).join(format!("{test}-{}.log", self.id)));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(env: &Env, id: &str, config: &Path, kubeconfig: &Path) -> Self {
        let port = free_port();
        let log = env.work.path().join(format!("fluxd-{id}.log"));
        let file = std::fs::File::create(&log).expect("create the log");
        let child = Command::new(example_binary("fluxd"))
            .arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--ha-namespace={HA_NAMESPACE}"))
            .arg(format!("--ha-replica-id={id}"))
            .arg(format!("--ha-lease-duration={}s", LEASE.as_secs()))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .env("FLUX_API_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start fluxd");
        let mut replica = Replica { id: id.to_owned(), child, log, url: format!("http://127.0.0.1:{port}") };
        let up = wait_until(PATIENCE, || {
            matches!(replica.child.try_wait(), Ok(None)) && TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "replica {id} did not start:\n{}", replica.log());
        replica
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The units this replica says it writes for (`GET /api/v1/units`: owner is itself).
    async fn claims(&self) -> BTreeSet<String> {
        let Ok(response) =
            reqwest::Client::new().get(format!("{}/api/v1/units", self.url)).bearer_auth(TOKEN).send().await
        else {
            return BTreeSet::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["units"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| u["owner"] == self.id.as_str())
            .filter_map(|u| u["name"].as_str().map(str::to_owned))
            .collect()
    }

    async fn post_sync(&self, unit: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/sync?unit={unit}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("reach fluxd");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let mut status = None;
        wait_until(PATIENCE, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "replica {} did not stop cleanly: {status:?}\n{}",
            self.id,
            self.log()
        );
    }
}

/// Each replica's claimed units, once they are exactly the assignment over `replicas` (every
/// unit claimed by one replica, the one the pure function names).
async fn settled(replicas: &[&Replica], units: &[String]) -> Option<BTreeMap<String, String>> {
    let ids: Vec<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
    let expected = flux_daemon::ha::assign(units, &ids);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut twice = false;
        for r in replicas {
            for unit in r.claims().await {
                twice |= owners.insert(unit, r.id.clone()).is_some();
            }
        }
        if !twice && owners == expected {
            return Some(owners);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

/// Commits every unit at `rev` and waits until each is written by its owner in `owners`; then
/// no other replica wrote any unit since the commit.
fn synced_by_owners(env: &Env, owners: &BTreeMap<String, String>, rev: &str) {
    let units: Vec<String> = owners.keys().cloned().collect();
    let since = jiff::Timestamp::now();
    env.commit(&units, rev);
    let applied = wait_until(PATIENCE, || {
        let audit = env.audit();
        owners.iter().all(|(u, o)| object_writes(&audit, u).iter().any(|w| w.received > since && w.user == user_of(o)))
    });
    assert!(applied, "every unit synced by its owner after the commit {rev}");
    let audit = env.audit();
    for (unit, owner) in owners {
        let writers: BTreeSet<&str> =
            object_writes(&audit, unit).iter().filter(|w| w.received > since).map(|w| w.user.as_str()).collect();
        assert_eq!(
            writers,
            BTreeSet::from([user_of(owner).as_str()]),
            "unit {unit} written by its owner alone ({rev})"
        );
    }
}

fn units(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

/// Waits until every write the server logs has been flushed (the log holds still).
fn quiet_audit(env: &Env) -> Vec<Request> {
    let _ = env.kube.requests(ADMIN, &["get"]);
    env.audit()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_thirty_units_one_writer_each_through_join_kill_and_sigterm() {
    let Some(env) = Env::start() else { return };
    let all = units(30);
    env.commit(&all, "0");
    let ids = ["replica-0", "replica-1", "replica-2", "replica-3"];
    let tokens = env.accounts(&ids).await;
    let config = env.config(&all);
    let kubeconfig = |id: &str| env.kubeconfig(id, env.kube.url(), &tokens[id]);
    let mut replicas: BTreeMap<String, Replica> =
        ids[..3].iter().map(|id| ((*id).to_owned(), Replica::start(&env, id, &config, &kubeconfig(id)))).collect();
    let colleague = env.colleague(&all);

    // Three replicas: each unit claimed by exactly the replica the assignment names, within
    // the bound; then a commit is written, for each unit, by that replica alone.
    let live: Vec<&Replica> = replicas.values().collect();
    let three = settled(&live, &all).await.expect("three replicas settle on the assignment");
    let mut loads: BTreeMap<&str, usize> = BTreeMap::new();
    three.values().for_each(|o| *loads.entry(o).or_default() += 1);
    assert!(loads.values().all(|&n| n <= flux_daemon::ha::capacity(30, 3)), "loads {loads:?}");
    synced_by_owners(&env, &three, "three");

    // A fourth joins: at most ceil(30/4) + 4 units move, and it gets some.
    replicas.insert("replica-3".into(), Replica::start(&env, "replica-3", &config, &kubeconfig("replica-3")));
    let live: Vec<&Replica> = replicas.values().collect();
    let four = settled(&live, &all).await.expect("four replicas settle");
    let moved = all.iter().filter(|u| three[*u] != four[*u]).count();
    eprintln!("a fourth replica joined: {moved} of 30 units moved");
    assert!(moved <= 30usize.div_ceil(4) + 4, "{moved} units moved");
    assert!(four.values().any(|o| o == "replica-3"));
    synced_by_owners(&env, &four, "four");

    // kill -9 the replica owning most units: the others sync its units (a commit made just
    // after the kill is applied) within the lease duration plus one sync interval.
    let mut loads: BTreeMap<&str, usize> = BTreeMap::new();
    four.values().for_each(|o| *loads.entry(o.as_str()).or_default() += 1);
    let victim = loads
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .map(|(id, _)| (*id).to_owned())
        .expect("a victim");
    let victim_units: Vec<String> = all.iter().filter(|u| four[*u] == victim).cloned().collect();
    let mut killed = replicas.remove(&victim).expect("the victim");
    killed.child.kill().expect("kill -9");
    let killed_at = jiff::Timestamp::now();
    let _ = killed.child.wait();
    env.commit(&all, "after-kill");
    let live: Vec<&Replica> = replicas.values().collect();
    let after_kill = settled(&live, &all).await.expect("three replicas settle after the kill");
    let resynced = wait_until(PATIENCE, || {
        let audit = env.audit();
        victim_units.iter().all(|u| object_writes(&audit, u).iter().any(|w| w.received > killed_at))
    });
    assert!(resynced, "the killed replica's units are synced again");
    let audit = quiet_audit(&env);
    let mut slowest = Duration::ZERO;
    for unit in &victim_units {
        let first =
            object_writes(&audit, unit).into_iter().find(|w| w.received > killed_at).expect("a write after the kill");
        assert_eq!(first.user, user_of(&after_kill[unit]), "unit {unit} synced by its new owner");
        let took = Duration::try_from(first.received.duration_since(killed_at)).unwrap_or_default();
        slowest = slowest.max(took);
    }
    eprintln!("kill -9 of {victim} ({} units): all synced by others {slowest:?} after", victim_units.len());
    assert!(slowest <= LEASE + SYNC_INTERVAL, "took {slowest:?}, over the lease duration + one sync interval");
    synced_by_owners(&env, &after_kill, "after-kill-settled");

    // SIGTERM: the replica releases its Leases at once; the others take its units by release
    // (before its Leases could have expired), quickly.
    let stopping = after_kill.values().find(|o| **o != victim).expect("a replica with units").clone();
    let stopping_units: Vec<String> = all.iter().filter(|u| after_kill[*u] == stopping).cloned().collect();
    let mut stopped = replicas.remove(&stopping).expect("the replica to stop");
    let terminated_at = jiff::Timestamp::now();
    stopped.terminate();
    let live: Vec<&Replica> = replicas.values().collect();
    let after_term = settled(&live, &all).await.expect("two replicas settle after the SIGTERM");
    let audit = quiet_audit(&env);
    let mut handover = Duration::ZERO;
    for unit in &stopping_units {
        let lease = format!("flux-unit-{unit}");
        let lease_writes: Vec<&Request> =
            audit.iter().filter(|r| r.is_write() && r.resource == "leases" && r.name == lease).collect();
        let released = lease_writes
            .iter()
            .filter(|r| r.user == user_of(&stopping))
            .map(|r| r.completed)
            .max()
            .expect("its last Lease write");
        let taken = lease_writes
            .iter()
            .filter(|r| r.user == user_of(&after_term[unit]) && r.received >= released)
            .map(|r| r.completed)
            .min()
            .expect("taken by the new owner");
        let since_last = Duration::try_from(taken.duration_since(released)).unwrap_or_default();
        assert!(
            since_last < LEASE,
            "unit {unit} taken {since_last:?} after its holder's last write: by expiry, not release"
        );
        handover = handover.max(Duration::try_from(taken.duration_since(terminated_at)).unwrap_or_default());
    }
    eprintln!("SIGTERM of {stopping} ({} units): handed over {handover:?} after", stopping_units.len());
    // The 2 s, with as much again for a loaded CI machine.
    assert!(handover <= Duration::from_secs(4), "hand-over took {handover:?}");
    let log = stopped.log();
    assert!(log.contains("Lease released"), "the stopped replica says it released its Leases:\n{log}");
    synced_by_owners(&env, &after_term, "after-term");

    // Over the whole run: for every unit, one writer at a time, each after taking the Lease.
    colleague.store(true, Ordering::SeqCst);
    let audit = quiet_audit(&env);
    if let Some(dir) = std::env::var_os("FLUX_HA_KEEP_LOGS") {
        let _ = std::fs::write(Path::new(&dir).join("audit.log"), env.kube.audit_log());
    }
    let switches: usize = all.iter().map(|u| assert_one_writer_at_a_time(&audit, u)).sum();
    eprintln!("{switches} changes of writer over 30 units, none overlapping");
    let expected = moved + victim_units.len() + stopping_units.len();
    assert!(switches >= expected, "{switches} changes of writer, {expected} moves seen");
}

/// A TCP proxy that can black-hole every connection, new and open, in both directions (a
/// network partition): bytes are read and dropped, nothing is answered nor closed.
struct PartitionProxy {
    port: u16,
    blocked: Arc<AtomicBool>,
    forwarded: Arc<AtomicUsize>,
}

impl PartitionProxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let blocked = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (b, f) = (blocked.clone(), forwarded.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                for (from, to) in [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
                    let (b, f) = (b.clone(), f.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) if !b.load(Ordering::SeqCst) => {
                                    f.fetch_add(n, Ordering::SeqCst);
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Ok(_) => {}
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        PartitionProxy { port, blocked, forwarded }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_stops_writing_before_its_units_are_taken() {
    let Some(env) = Env::start() else { return };
    let all = units(8);
    env.commit(&all, "0");
    let tokens = env.accounts(&["replica-0", "replica-1"]).await;
    let config = env.config(&all);
    let upstream = env.kube.url().trim_start_matches("https://").to_owned();
    let proxy = PartitionProxy::start(upstream);
    let through_proxy = env.kubeconfig("replica-0", &format!("https://127.0.0.1:{}", proxy.port), &tokens["replica-0"]);
    let direct = env.kubeconfig("replica-1", env.kube.url(), &tokens["replica-1"]);
    let p = Replica::start(&env, "replica-0", &config, &through_proxy);
    let q = Replica::start(&env, "replica-1", &config, &direct);
    let colleague = env.colleague(&all);
    let before = settled(&[&p, &q], &all).await.expect("two replicas settle");
    let p_units: Vec<String> = all.iter().filter(|u| before[*u] == "replica-0").cloned().collect();
    assert!(!p_units.is_empty(), "the proxied replica owns units: {before:?}");
    assert!(proxy.forwarded.load(Ordering::SeqCst) > 0, "its requests go through the proxy");
    synced_by_owners(&env, &before, "before-partition");

    // Partition: q takes p's units once their Leases expired; by then p writes for none.
    proxy.blocked.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let claims = q.claims().await;
        if p_units.iter().all(|u| claims.contains(u)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other replica did not take the partitioned one's units");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(p.claims().await.is_empty(), "the partitioned replica says it writes for nothing");
    let (status, body) = p.post_sync(&p_units[0]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("does not write for it"), "{body}");
    // q writes every unit now (and nothing of p reaches the server).
    let q_all: BTreeMap<String, String> = all.iter().map(|u| (u.clone(), "replica-1".to_owned())).collect();
    synced_by_owners(&env, &q_all, "partitioned");

    // Healed: it takes its share again; one writer at a time throughout.
    proxy.blocked.store(false, Ordering::SeqCst);
    let after = settled(&[&p, &q], &all).await.expect("settled again after the partition");
    assert_eq!(after, before, "the same assignment once both are live");
    // The units it took back are written by it again at the next commit.
    let healed = jiff::Timestamp::now();
    env.commit(&all, "healed");
    let rewritten = wait_until(PATIENCE, || {
        let audit = env.audit();
        p_units
            .iter()
            .all(|u| object_writes(&audit, u).iter().any(|w| w.received > healed && w.user == user_of("replica-0")))
    });
    assert!(rewritten, "the healed replica syncs its units again");
    colleague.store(true, Ordering::SeqCst);
    let audit = quiet_audit(&env);
    let switches: usize = all.iter().map(|u| assert_one_writer_at_a_time(&audit, u)).sum();
    assert!(switches >= 2 * p_units.len(), "p's units went to q and came back ({switches} changes)");
}

/// A Deployment for `unit` (a workload to lock).
fn web(unit: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{unit}\n  namespace: default\nspec:\n  selector:\n    \
         matchLabels:\n      app: web-{unit}\n  template:\n    metadata:\n      labels:\n        app: web-{unit}\n    spec:\n      \
         containers:\n      - name: web\n        image: registry.example/web:1.0\n"
    )
}

impl Replica {
    /// Runs fluxctl against this replica.
    fn fluxctl(&self, args: &[&str]) -> std::process::Output {
        let out = crate::harness::fluxctl_at(&self.url, args);
        eprintln!(
            "fluxctl {args:?} through {}:\n{}{}",
            self.id,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `method path` with the token, `headers` and a JSON `body`: status, the replica that
    /// answered a forwarded request (`x-flux-forwarded-to`) and the body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Option<String>, String) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url)).bearer_auth(TOKEN);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("reach fluxd");
        let to = response.headers().get("x-flux-forwarded-to").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (response.status().as_u16(), to, response.text().await.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_to_a_replica_that_does_not_own_the_unit_are_done_by_the_owner() {
    let Some(env) = Env::start() else { return };
    let all = units(4);
    let files: Vec<(String, String)> = all.iter().map(|u| (format!("{u}/web.yaml"), web(u))).collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())).collect();
    env.repo.lock().expect("repo").commit_files(&files, "web workloads");
    env.commit(&all, "0");
    let tokens = env.accounts(&["replica-0", "replica-1"]).await;
    let config = env.config(&all);
    let kubeconfig = |id: &str| env.kubeconfig(id, env.kube.url(), &tokens[id]);
    let mut replicas = [
        Replica::start(&env, "replica-0", &config, &kubeconfig("replica-0")),
        Replica::start(&env, "replica-1", &config, &kubeconfig("replica-1")),
    ];
    let owners = settled(&[&replicas[0], &replicas[1]], &all).await.expect("two replicas settle");
    // A unit and the replica that does not write for it.
    let unit = all.iter().find(|u| owners[*u] == "replica-0").unwrap_or(&all[0]).clone();
    let owner = &owners[&unit];
    let (owning_at, other_at) = if replicas[0].id == *owner { (0, 1) } else { (1, 0) };
    let (owning, other) = (&replicas[owning_at], &replicas[other_at]);
    let settled_at = jiff::Timestamp::now();
    synced_by_owners(&env, &owners, "settled");

    // fluxctl through the other replica: the lock is committed, and the owner applies it; the
    // job fluxctl waits on (GET /jobs/{id} through the other replica) is the owner's.
    let workload = format!("default:deployment/web-{unit}");
    let locked_at = jiff::Timestamp::now();
    let out = other.fluxctl(&["--unit", &unit, "lock", "-w", &workload, "-m", "locked through the other replica"]);
    assert!(out.status.success(), "fluxctl lock through {}: {}", other.id, String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Commit pushed"), "the lock was committed");
    let manifest = env.repo.lock().expect("repo").git(&["show", &format!("main:{unit}/web.yaml")]);
    assert!(manifest.contains("fluxcd.io/locked"), "the lock is in git:\n{manifest}");
    let message = env.repo.lock().expect("repo").git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("Flux-Job:"), "the owner's job made the commit:\n{message}");
    let applied = wait_until(PATIENCE, || {
        object_writes_of(&env.audit(), "deployments", &format!("web-{unit}"))
            .iter()
            .any(|w| w.received > locked_at && w.user == user_of(owner))
    });
    assert!(applied, "the owner applies the locked Deployment");
    assert!(owning.log().contains("write forwarded by another replica"), "the owner says it was forwarded");
    assert!(other.log().contains("write forwarded to the unit's owner"), "the other replica says it forwarded");

    // A plain POST /sync through the other replica: the owner answers with its job, which the
    // other replica finds (asking its peers); asked directly and marked forwarded, it does not
    // know the job itself.
    let sync = format!("/api/v1/sync?unit={unit}");
    let (status, by, body) = other.call(reqwest::Method::POST, &sync, &[], None).await;
    assert_eq!((status, by.as_deref()), (202, Some(owner.as_str())), "{body}");
    let job: Value = serde_json::from_str(&body).expect("a job id");
    let job = job["job_id"].as_str().expect("a job id").to_owned();
    let path = format!("/api/v1/jobs/{job}?unit={unit}");
    let mut done = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done && tokio::time::Instant::now() < deadline {
        let (status, by, body) = other.call(reqwest::Method::GET, &path, &[], None).await;
        assert_eq!((status, by.as_deref()), (200, Some(owner.as_str())), "the job is found at its owner: {body}");
        let view: Value = serde_json::from_str(&body).expect("a job");
        assert_ne!(view["status"], "failed", "{body}");
        done = view["status"] == "succeeded";
        if !done {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert!(done, "the forwarded sync job succeeds");
    let (status, _, _) = owning.call(reqwest::Method::GET, &path, &[], None).await;
    assert_eq!(status, 200, "the owner ran the job");
    let (status, _, body) = other.call(reqwest::Method::GET, &path, &[("x-flux-forwarded-by", "test")], None).await;
    assert_eq!(status, 404, "the other replica does not know the job itself: {body}");
    let (status, _, _) = other.call(reqwest::Method::GET, &format!("/api/v1/jobs/nope?unit={unit}"), &[], None).await;
    assert_eq!(status, 404, "a job no replica knows");

    // The prune allowance goes with the sync to the owner, which syncs.
    let prune = format!("/api/v1/sync?unit={unit}&allow_prune=true");
    let (status, by, body) = other.call(reqwest::Method::POST, &prune, &[], None).await;
    assert_eq!((status, by.as_deref()), (202, Some(owner.as_str())), "{body}");
    assert!(owning.log().contains("one prune allowed past the prune guard"), "the owner took the allowance");
    assert!(!other.log().contains("one prune allowed past the prune guard"), "the other replica did not");

    // Forwarded once, never again: a forwarded write the receiver does not own is refused.
    let (status, _, body) = other.call(reqwest::Method::POST, &sync, &[("x-flux-forwarded-by", "test")], None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&format!("send writes for it to {owner}")), "{body}");

    // Suspend and resume through the other replica: the owner's status answers.
    let body = serde_json::json!({ "message": "through the other replica" });
    let suspend = format!("/api/v1/suspend?unit={unit}");
    let (status, by, answer) = other.call(reqwest::Method::POST, &suspend, &[], Some(body)).await;
    assert_eq!((status, by.as_deref()), (200, Some(owner.as_str())), "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a status");
    assert_eq!(answer["suspended"]["message"], "through the other replica", "{answer}");
    let (status, _, own) = owning.call(reqwest::Method::GET, &format!("/api/v1/status?unit={unit}"), &[], None).await;
    assert_eq!(status, 200);
    assert!(own.contains("through the other replica"), "the owner holds the suspension: {own}");
    // A status read through the other replica is the owner's (fluxctl release waits on it).
    let (status, by, seen) = other.call(reqwest::Method::GET, &format!("/api/v1/status?unit={unit}"), &[], None).await;
    assert_eq!((status, by.as_deref()), (200, Some(owner.as_str())), "{seen}");
    assert!(seen.contains("through the other replica"), "the owner's status: {seen}");
    let resume = format!("/api/v1/resume?unit={unit}");
    let (status, by, answer) = other.call(reqwest::Method::POST, &resume, &[], Some(serde_json::json!({}))).await;
    assert_eq!((status, by.as_deref()), (200, Some(owner.as_str())), "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a status");
    assert!(answer["suspended"].is_null(), "resumed: {answer}");

    // Once settled, nothing of the unit was written by the other replica.
    let audit = quiet_audit(&env);
    for (resource, name) in [("configmaps", format!("cm-{unit}")), ("deployments", format!("web-{unit}"))] {
        let writes = object_writes_of(&audit, resource, &name);
        let writers: BTreeSet<String> =
            writes.iter().filter(|w| w.received > settled_at).map(|w| w.user.clone()).collect();
        assert_eq!(writers, BTreeSet::from([user_of(owner)]), "{resource}/{name} written by its owner alone");
    }

    // A suspension survives a hand-over: suspended (through the other replica), the owner
    // stops (SIGTERM); the other takes the unit, reads the suspension from the unit's Lease and
    // holds its syncs, applying nothing of a new commit until resumed.
    let body = serde_json::json!({ "user": "ana", "message": "kept across the hand-over" });
    let (status, by, answer) = other.call(reqwest::Method::POST, &suspend, &[], Some(body)).await;
    assert_eq!((status, by.as_deref()), (200, Some(owner.as_str())), "{answer}");
    let other_id = other.id.clone();
    let terminated_at = jiff::Timestamp::now();
    replicas[owning_at].terminate();
    let other = &replicas[other_at];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !other.claims().await.contains(&unit) {
        assert!(tokio::time::Instant::now() < deadline, "{other_id} did not take {unit} after the SIGTERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    env.commit(&all, "while-suspended");
    let head = env.repo.lock().expect("repo").head();
    // A sync asked of the new owner (itself now: nothing forwarded) at the new head is held.
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while last["result"]["revision"] != head.as_str() {
        assert!(tokio::time::Instant::now() < deadline, "no sync of {head} by {other_id}: {last}");
        let (status, by, body) = other.call(reqwest::Method::POST, &sync, &[], None).await;
        assert_eq!((status, by), (202, None), "{body}");
        let job: Value = serde_json::from_str(&body).expect("a job id");
        let path = format!("/api/v1/jobs/{}?unit={unit}", job["job_id"].as_str().expect("a job id"));
        loop {
            let body = other.call(reqwest::Method::GET, &path, &[], None).await.2;
            last = serde_json::from_str(&body).expect("a job");
            if last["status"] == "succeeded" || last["status"] == "failed" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sync job did not finish: {last}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(last["status"], "succeeded", "{last}");
    }
    assert_eq!(last["result"]["held"]["by"], unit.as_str(), "the sync of {head} is held by the suspension: {last}");
    let status = other.call(reqwest::Method::GET, &format!("/api/v1/status?unit={unit}"), &[], None).await.2;
    let status: Value = serde_json::from_str(&status).expect("a status");
    assert_eq!(status["suspended"]["message"], "kept across the hand-over", "{status}");
    let audit = quiet_audit(&env);
    let written: Vec<_> = object_writes_of(&audit, "configmaps", &format!("cm-{unit}"))
        .into_iter()
        .filter(|w| w.received > terminated_at)
        .collect();
    assert!(written.is_empty(), "nothing applied while suspended: {written:?}");
    let resumed_at = jiff::Timestamp::now();
    let (status, by, answer) = other.call(reqwest::Method::POST, &resume, &[], Some(serde_json::json!({}))).await;
    assert_eq!((status, by), (200, None), "the new owner resumes itself: {answer}");
    let applied = wait_until(PATIENCE, || {
        object_writes(&env.audit(), &unit).iter().any(|w| w.received > resumed_at && w.user == user_of(&other_id))
    });
    assert!(applied, "resumed, the new owner applies the commit");
}

/// The writes of object `resource`/`name`, by replicas, in the order the server received them.
fn object_writes_of<'a>(audit: &'a [Request], resource: &str, name: &str) -> Vec<&'a Request> {
    let mut writes: Vec<&Request> = audit
        .iter()
        .filter(|r| {
            r.is_write() && r.resource == resource && r.name == name && r.user.starts_with("system:serviceaccount:")
        })
        .collect();
    writes.sort_by_key(|r| r.received);
    writes
}
