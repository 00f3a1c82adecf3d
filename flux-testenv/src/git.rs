//! Real git servers: a bare repository (served over `file://`), `git daemon` (git://, with
//! pushes enabled) and OpenSSH's `sshd` (ssh://, with a generated host key and deploy key).
//! Each lives in its own temporary directory, on a free loopback port, and stops when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ServerProcess, find_program, free_port, require};

/// Runs `git` with `args` in `dir` (no global or system config, a fixed test identity),
/// panicking with its output when it fails; returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    try_git(dir, args, &[], stdin).unwrap_or_else(|e| panic!("git {args:?} failed: {e}"))
}

/// Like [`git`] with extra environment variables, returning the error output on failure.
fn try_git(dir: &Path, args: &[&str], env: &[(&str, &Path)], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut pipe, input).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A bare repository in a temporary directory whose branch `main` holds one commit (a README).
#[derive(Debug)]
pub struct BareRepo {
    dir: tempfile::TempDir,
}

impl BareRepo {
    /// Creates the repository; `None` (after a loud skip message) when `git` is missing outside CI.
    pub fn new() -> Option<Self> {
        require("git", find_program("git"))?;
        let dir = tempfile::Builder::new().prefix("flux-git-remote-").tempdir().expect("temp dir");
        let repo = BareRepo { dir };
        std::fs::create_dir(repo.path()).expect("create repo dir");
        repo.git(&["init", "--quiet", "--bare", "--initial-branch=main"]);
        repo.commit_files(&[("README.md", b"# test repository\n".as_slice())], "initial commit");
        Some(repo)
    }

    /// The directory the servers serve (the parent of [`BareRepo::path`]).
    pub fn base_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bare repository itself, `<base>/repo.git`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    /// `file:///…/repo.git`.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Runs `git` in the repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path(), args, None)
    }

    /// The commit `main` points to.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "refs/heads/main"])
    }

    /// Commits `files` (path, content) on top of `main` directly in the bare repository, as a
    /// colleague's push would, and returns the new commit. Paths are single file names or
    /// nested `dir/name`.
    pub fn commit_files(&self, files: &[(&str, &[u8])], message: &str) -> String {
        let entries: Vec<_> = files.iter().map(|(path, content)| ("100644", *path, *content)).collect();
        self.commit_entries(&entries, message)
    }

    /// Commits a symbolic link at `path` pointing to `target` on top of `main`.
    pub fn commit_symlink(&self, path: &str, target: &str, message: &str) -> String {
        self.commit_entries(&[("120000", path, target.as_bytes())], message)
    }

    /// Commits many files at once (one `git fast-import`), e.g. thousands for a benchmark.
    pub fn commit_many(&self, files: &[(String, Vec<u8>)], message: &str) -> String {
        let entries: Vec<_> =
            files.iter().map(|(path, content)| ("100644", path.as_str(), content.as_slice())).collect();
        self.commit_entries(&entries, message)
    }

    /// Commits `(mode, path, content)` entries on top of `main` with `git fast-import`.
    fn commit_entries(&self, files: &[(&str, &str, &[u8])], message: &str) -> String {
        let dir = self.path();
        let parent = try_git(&dir, &["rev-parse", "--verify", "--quiet", "refs/heads/main^{commit}"], &[], None).ok();
        let mut stream = Vec::new();
        let data = |stream: &mut Vec<u8>, bytes: &[u8]| {
            stream.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
            stream.extend_from_slice(bytes);
            stream.push(b'\n');
        };
        stream.extend_from_slice(b"commit refs/heads/main\ncommitter Test <test@example.com> now\n");
        data(&mut stream, message.as_bytes());
        if let Some(parent) = &parent {
            stream.extend_from_slice(format!("from {parent}\n").as_bytes());
        }
        for (mode, path, content) in files {
            stream.extend_from_slice(format!("M {mode} inline {path}\n").as_bytes());
            data(&mut stream, content);
        }
        git(&dir, &["fast-import", "--quiet", "--date-format=now"], Some(&stream));
        self.head()
    }
}

fn wait_for_port(server: &mut ServerProcess, port: u16) {
    server.wait_ready(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// `git daemon` serving a [`BareRepo`]'s base directory on a loopback port, pushes enabled.
#[derive(Debug)]
pub struct GitDaemon {
    process: ServerProcess,
    port: u16,
}

impl GitDaemon {
    /// Starts the daemon; `None` (after a loud skip message) when git is missing outside CI.
    pub fn start(repo: &BareRepo) -> Option<Self> {
        let git = require("git", find_program("git"))?;
        let port = free_port();
        let mut command = Command::new(git);
        command
            .arg("daemon")
            .args(["--reuseaddr", "--listen=127.0.0.1", "--export-all", "--enable=receive-pack", "--verbose"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repo.base_dir().display()))
            .arg(repo.base_dir());
        let mut process = ServerProcess::start("git-daemon", command, repo.base_dir()).expect("start git daemon");
        wait_for_port(&mut process, port);
        Some(GitDaemon { process, port })
    }

    /// `git://127.0.0.1:<port>/repo.git`.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.port)
    }

    /// How many upload-pack (fetch and ref listing) requests the daemon has served so far.
    pub fn upload_pack_requests(&self) -> usize {
        self.process.log().lines().filter(|l| l.contains("Request upload-pack")).count()
    }
}

/// OpenSSH's `sshd` on a loopback port, with a generated host key, letting in the current user
/// with a generated deploy key.
#[derive(Debug)]
pub struct Sshd {
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

impl Sshd {
    /// Starts sshd; `None` (after a loud skip message) when sshd or ssh-keygen is missing outside CI.
    pub fn start() -> Option<Self> {
        let sshd = require("sshd (openssh-server)", find_program("sshd"))?;
        require("ssh-keygen (openssh-client)", find_program("ssh-keygen"))?;
        require("ssh (openssh-client)", find_program("ssh"))?;
        let dir = tempfile::Builder::new().prefix("flux-sshd-").tempdir().expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "deploy_key", "other_key"] {
            keygen(&d.join(key));
        }
        std::fs::copy(d.join("deploy_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = free_port();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).expect("known_hosts");
        let other_pub = std::fs::read_to_string(d.join("other_key.pub")).expect("other key");
        std::fs::write(d.join("wrong_known_hosts"), format!("[127.0.0.1]:{port} {other_pub}")).expect("known_hosts");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // sshd running as root needs its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut command = Command::new(sshd);
        command.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
        let mut process = ServerProcess::start("sshd", command, d).expect("start sshd");
        wait_for_port(&mut process, port);
        let user = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .expect("id -un");
        Some(Sshd { _process: process, port, dir, user })
    }

    /// `ssh://<user>@127.0.0.1:<port><absolute path of repo>`.
    pub fn url(&self, repo: &BareRepo) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, repo.path().display())
    }

    /// The deploy key's private key file (authorized by the server).
    pub fn deploy_key(&self) -> PathBuf {
        self.dir.path().join("deploy_key")
    }

    /// Lets in exactly these public keys (OpenSSH lines) from now on, in place of the deploy
    /// key: sshd reads the file at each connection.
    pub fn authorize_only(&self, public_keys: &[&str]) {
        let lines: String = public_keys.iter().map(|k| format!("{}\n", k.trim())).collect();
        std::fs::write(self.dir.path().join("authorized_keys"), lines).expect("write authorized_keys");
    }

    /// A known_hosts file holding the server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A known_hosts file that names another key for the server: connecting must be refused.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        self.dir.path().join("wrong_known_hosts")
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "flux-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}
