//! A real Kubernetes API server: `etcd` and `kube-apiserver` on free loopback ports in a temporary
//! directory, with token authentication, RBAC and an audit log.
//!
//! The binaries come from `KUBEBUILDER_ASSETS` (the controller-runtime envtest layout:
//! `$KUBEBUILDER_ASSETS/etcd` and `$KUBEBUILDER_ASSETS/kube-apiserver`); `scripts/kube-assets.sh`
//! provides them. `openssl` makes the service-account key and `curl` probes `/readyz`.
//!
//! Two identities are known to the server: [`ADMIN`] (group `system:masters`) and [`RESTRICTED`],
//! which RBAC allows nothing until a test grants it roles. Each has a kubeconfig
//! ([`KubeApiServer::kubeconfig`]). The audit log records every request at `Metadata` level, so
//! tests can count the writes one identity made ([`KubeApiServer::write_requests`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{ServerProcess, find_program, free_port, require};

/// The administrator's user name (group `system:masters`: allowed everything).
pub const ADMIN: &str = "flux-admin";
/// A user allowed nothing until RBAC grants it something.
pub const RESTRICTED: &str = "flux-restricted";

/// Where the envtest binaries are, if `KUBEBUILDER_ASSETS` names a folder holding both.
pub fn kube_assets() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("KUBEBUILDER_ASSETS")?);
    (dir.join("etcd").is_file() && dir.join("kube-apiserver").is_file()).then_some(dir)
}

/// A running `etcd` + `kube-apiserver` pair; both are stopped (by PID) when dropped, and their
/// directory removed.
#[derive(Debug)]
pub struct KubeApiServer {
    // Field order matters: the API server stops before etcd, and both before the directory goes.
    apiserver: ServerProcess,
    etcd: ServerProcess,
    url: String,
    dir: tempfile::TempDir,
}

impl KubeApiServer {
    /// Starts a fresh pair, or returns `None` (after [`require`]'s loud skip message; in CI it
    /// panics) when the binaries are missing. Panics with the servers' logs if they do not start.
    pub fn start() -> Option<Self> {
        let assets = require("etcd and kube-apiserver (KUBEBUILDER_ASSETS)", kube_assets())?;
        let openssl = require("openssl", find_program("openssl"))?;
        let curl = require("curl", find_program("curl"))?;
        let dir = tempfile::Builder::new().prefix("flux-kube-").tempdir().expect("create a temp dir");
        let d = dir.path();

        let (client_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let mut etcd = Command::new(assets.join("etcd"));
        etcd.arg(format!("--data-dir={}", d.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"))
            .arg("--quota-backend-bytes=4294967296");
        let mut etcd = ServerProcess::start("etcd", etcd, d).expect("start etcd");
        etcd.wait_ready(Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", client_port)).is_ok());

        let status = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sa"])
            .arg("-keyout")
            .arg(d.join("sa.key"))
            .arg("-out")
            .arg(d.join("sa.crt"))
            .output()
            .expect("run openssl");
        assert!(status.status.success(), "openssl failed: {}", String::from_utf8_lossy(&status.stderr));
        let users = [(ADMIN, "system:masters"), (RESTRICTED, "flux-restricted-group")];
        let tokens: String =
            users.iter().map(|(user, group)| format!("{},{user},{user},\"{group}\"\n", token(user))).collect();
        fs::write(d.join("tokens.csv"), tokens).expect("write tokens.csv");
        fs::write(d.join("audit-policy.yaml"), AUDIT_POLICY).expect("write the audit policy");

        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let mut apiserver = Command::new(assets.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!("--service-account-key-file={}", d.join("sa.crt").display()))
            .arg(format!("--service-account-signing-key-file={}", d.join("sa.key").display()))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--token-auth-file={}", d.join("tokens.csv").display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-cluster-ip-range=10.0.0.0/16")
            .arg("--allow-privileged=true")
            .arg(format!("--audit-policy-file={}", d.join("audit-policy.yaml").display()))
            .arg(format!("--audit-log-path={}", d.join("audit.log").display()))
            .arg("--audit-log-mode=blocking");
        let mut apiserver = ServerProcess::start("kube-apiserver", apiserver, d).expect("start kube-apiserver");
        let readyz = format!("{url}/readyz");
        let auth = format!("Authorization: Bearer {}", token(ADMIN));
        apiserver.wait_ready(Duration::from_secs(90), || {
            Command::new(&curl)
                .args(["-ksf", "-m", "2", "-H", &auth, &readyz])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout == b"ok")
        });

        let server = KubeApiServer { apiserver, etcd, url, dir };
        for (user, _) in users {
            server.write_kubeconfig(user);
        }
        Some(server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig of `user` ([`ADMIN`] or [`RESTRICTED`]).
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("kubeconfig-{user}"))
    }

    /// The bearer token of `user`.
    pub fn token(&self, user: &str) -> String {
        token(user)
    }

    /// The folder the servers keep their data, certificates and logs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PIDs of etcd and kube-apiserver.
    pub fn pids(&self) -> (u32, u32) {
        (self.etcd.pid(), self.apiserver.pid())
    }

    /// The audit log so far: one JSON event per line.
    pub fn audit_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }

    /// How many completed write requests (create, update, patch, delete, deletecollection)
    /// `user` has made so far, according to the audit log. Dry runs are writes too, for the
    /// server; a caller that wants "persisted nothing" makes none.
    ///
    /// The server logs a request's completion just after answering it, so this waits until the
    /// count holds still for 300 ms.
    pub fn write_requests(&self, user: &str) -> usize {
        self.requests(user, &WRITE_VERBS)
    }

    /// How many completed requests with one of `verbs` (`get`, `list`, `patch`…) `user` has made
    /// so far, according to the audit log; waits like [`KubeApiServer::write_requests`].
    pub fn requests(&self, user: &str, verbs: &[&str]) -> usize {
        let mut last = count_requests(&self.audit_log(), user, verbs);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = count_requests(&self.audit_log(), user, verbs);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    fn write_kubeconfig(&self, user: &str) {
        let ca = self.dir.path().join("certs").join("apiserver.crt");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
             users:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  context:\n    cluster: test\n    user: {user}\n\
             current-context: {user}\n",
            url = self.url,
            ca = ca.display(),
            token = token(user),
        );
        fs::write(self.kubeconfig(user), config).expect("write a kubeconfig");
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        // A failed test is easier to read with the server's side of the story.
        if std::thread::panicking() {
            // Its errors only (klog's `E` lines), and few: CI shows the end of a failed test's
            // output, and the panic message must stay in sight above this.
            let log = self.apiserver.log();
            let tail: Vec<&str> = log.lines().rev().filter(|l| l.starts_with('E')).take(12).collect();
            eprintln!("--- the last errors in kube-apiserver's log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A per-user token: test servers are throwaway, the token only has to differ between users.
fn token(user: &str) -> String {
    format!("{user}-token-0123456789")
}

/// The verbs that change something.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Counts completed requests by `user` with one of `verbs` in an audit log (JSON lines, as
/// kube-apiserver writes them: compact, `"key":"value"`).
fn count_requests(log: &str, user: &str, verbs: &[&str]) -> usize {
    let by_user = format!("\"username\":\"{user}\"");
    let verbs: Vec<String> = verbs.iter().map(|v| format!("\"verb\":\"{v}\"")).collect();
    log.lines()
        .filter(|l| l.contains("\"stage\":\"ResponseComplete\"") && l.contains(&by_user))
        .filter(|l| verbs.iter().any(|v| l.contains(v.as_str())))
        .count()
}

/// Every request at `Metadata` level, recorded once (when complete).
const AUDIT_POLICY: &str =
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n- level: Metadata\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_by_user_and_verb() {
        let log = [
            r#"{"stage":"ResponseComplete","verb":"patch","user":{"username":"flux-admin"}}"#,
            r#"{"stage":"ResponseComplete","verb":"list","user":{"username":"flux-admin"}}"#,
            r#"{"stage":"ResponseStarted","verb":"create","user":{"username":"flux-admin"}}"#,
            r#"{"stage":"ResponseComplete","verb":"delete","user":{"username":"system:apiserver"}}"#,
            r#"{"stage":"ResponseComplete","verb":"create","user":{"username":"flux-admin"}}"#,
        ]
        .join("\n");
        assert_eq!(count_requests(&log, ADMIN, &WRITE_VERBS), 2);
        assert_eq!(count_requests(&log, ADMIN, &["list"]), 1);
        assert_eq!(count_requests(&log, RESTRICTED, &WRITE_VERBS), 0);
    }
}
