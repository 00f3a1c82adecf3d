//! Real `/bin/sh` commands: clean environment, timeouts that kill the process group, errors.

use std::path::Path;
use std::time::Duration;

use flux_core::{Error, Location};
use flux_generate::{CommandRunner, ShellCommand};

fn cmd(command: &str, dir: &Path) -> ShellCommand {
    ShellCommand::new(command, dir, Location::line(".flux.yaml", 5))
}

#[tokio::test]
async fn the_environment_is_clean_but_for_path_home_lang_and_the_given_vars() {
    let dir = tempfile::tempdir().unwrap();
    let runner = CommandRunner::new().with_path("/usr/bin:/bin");
    let mut c = cmd("env", dir.path());
    c.env = vec![("FLUX_WL_NAME".into(), "web".into()), ("FLUX_POLICY_VALUE".into(), "a b=c".into())];
    let out = runner.run(&c).await.unwrap();
    let mut names: Vec<&str> = out.stdout.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    names.sort_unstable();
    // `sh` itself may add PWD, SHLVL and `_`; nothing else may appear.
    names.retain(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(n));
    assert_eq!(names, ["FLUX_POLICY_VALUE", "FLUX_WL_NAME", "HOME", "LANG", "PATH"], "{}", out.stdout);
    assert!(out.stdout.contains("PATH=/usr/bin:/bin\n"));
    assert!(out.stdout.contains("LANG=C.UTF-8\n"));
    assert!(out.stdout.contains("FLUX_WL_NAME=web\n"));
    assert!(out.stdout.contains("FLUX_POLICY_VALUE=a b=c\n"));
    let home = out.stdout.lines().find_map(|l| l.strip_prefix("HOME=")).unwrap();
    assert_ne!(Some(home), std::env::var("HOME").ok().as_deref(), "HOME is a fresh directory");
    assert!(!Path::new(home).exists(), "the fresh HOME is removed afterwards");
}

/// The daemon's secrets never reach a command. The secret is set in a child test process of
/// its own (setting variables in a multi-threaded test binary is unsound).
#[test]
fn daemon_secrets_do_not_leak() {
    if std::env::var("FLUX_TEST_SECRET").is_ok() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = rt.block_on(CommandRunner::new().run(&cmd("env; echo done", dir.path()))).unwrap();
        assert!(out.stdout.ends_with("done\n"), "{}", out.stdout);
        assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
        assert!(!out.stdout.contains("FLUX_TEST_SECRET"), "{}", out.stdout);
        assert!(!out.stdout.contains("SSH_AUTH_SOCK"), "{}", out.stdout);
        return;
    }
    let me = std::env::current_exe().unwrap();
    let status = std::process::Command::new(me)
        .args(["--exact", "daemon_secrets_do_not_leak", "--test-threads=1"])
        .env("FLUX_TEST_SECRET", "hunter2")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
        .status()
        .unwrap();
    assert!(status.success(), "the check in the child test process failed");
}

#[tokio::test]
async fn runs_in_the_given_directory_with_stdin_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("here.txt"), "hello").unwrap();
    let out = CommandRunner::new().run(&cmd("cat here.txt; cat; echo '<eof' >&2", dir.path())).await.unwrap();
    assert_eq!(out.stdout, "hello");
    assert_eq!(out.stderr, "<eof\n");
}

/// Every live (not zombie) process whose process group is `pgid`.
fn live_members(pgid: u32) -> Vec<String> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("Linux has /proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            live.push(stat);
        }
    }
    live
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    // `$$` is the shell's pid, which is its process group's id.
    let mut c = cmd("echo $$ > group; sleep 600 | cat", dir.path());
    c.timeout = Duration::from_secs(1);
    let err = CommandRunner::new().run(&c).await.unwrap_err();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`echo $$ > group; sleep 600 | cat` (from .flux.yaml:5) timed out after 1s"), "{text}");
    assert!(text.contains("--sync-timeout"), "{text}");
    let pgid: u32 = std::fs::read_to_string(dir.path().join("group")).unwrap().trim().parse().unwrap();
    // SIGKILL is delivered before kill(2) returns; the processes may linger as zombies only.
    let gone = flux_testenv::wait_until(Duration::from_secs(30), || live_members(pgid).is_empty());
    assert!(gone, "left behind: {:?}", live_members(pgid));
}

#[tokio::test]
async fn processes_started_in_the_background_do_not_outlive_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let c = cmd("echo $$ > group; sleep 600 > /dev/null 2>&1 & echo started", dir.path());
    let out = CommandRunner::new().run(&c).await.unwrap();
    assert_eq!(out.stdout, "started\n");
    let pgid: u32 = std::fs::read_to_string(dir.path().join("group")).unwrap().trim().parse().unwrap();
    let gone = flux_testenv::wait_until(Duration::from_secs(30), || live_members(pgid).is_empty());
    assert!(gone, "left behind: {:?}", live_members(pgid));
}

#[tokio::test]
async fn a_failure_names_the_origin_the_status_and_the_end_of_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = "for i in $(seq 1 2000); do echo \"noise line $i\" >&2; done; echo 'the real problem' >&2; exit 3";
    let err = CommandRunner::new().run(&cmd(script, dir.path())).await.unwrap_err();
    let Error::InvalidInput { location, message } = &err else { panic!("{err:?}") };
    assert_eq!(location, &Location::line(".flux.yaml", 5));
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.trim_end().ends_with("the real problem"), "{message}");
    assert!(message.contains("noise line 2000"), "{message}");
    assert!(!message.contains("noise line 1\n"), "only the tail is kept: {message}");
    assert!(message.len() < 5000, "{} bytes", message.len());
}

#[tokio::test]
async fn a_missing_program_fails_with_sh_s_message() {
    let dir = tempfile::tempdir().unwrap();
    let err = CommandRunner::new().run(&cmd("no-such-program-flux --x", dir.path())).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(".flux.yaml:5: `no-such-program-flux --x` failed (exit status: 127)"), "{text}");
    assert!(text.contains("not found"), "{text}");
}

#[tokio::test]
async fn stdout_must_be_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let err = CommandRunner::new().run(&cmd(r"printf 'ok\377'", dir.path())).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("not UTF-8 (at byte 2)"), "{err}");
}

#[tokio::test]
async fn stdout_over_the_cap_fails_and_the_writer_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let runner = CommandRunner::new().with_max_stdout(1000);
    let err = runner.run(&cmd("echo $$ > group; yes", dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("`echo $$ > group; yes` printed more than 1000 bytes on stdout"), "{err}");
    let pgid: u32 = std::fs::read_to_string(dir.path().join("group")).unwrap().trim().parse().unwrap();
    assert!(flux_testenv::wait_until(Duration::from_secs(30), || live_members(pgid).is_empty()));
    let exact = runner.run(&cmd("head -c 1000 /dev/zero | tr '\\0' x", dir.path())).await.unwrap();
    assert_eq!(exact.stdout.len(), 1000);
}

#[tokio::test]
async fn a_missing_directory_cannot_start() {
    let err = CommandRunner::new().run(&cmd("true", Path::new("/nonexistent/flux"))).await.unwrap_err();
    assert!(matches!(err, Error::Other { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot start `true` (from .flux.yaml:5) in /nonexistent/flux"), "{err}");
}

#[test]
fn debug_shows_variable_names_only() {
    let mut c = cmd("true", Path::new("/tmp"));
    c.env = vec![("FLUX_POLICY_VALUE".into(), "s3cr3t-value".into())];
    let shown = format!("{c:?}");
    assert!(shown.contains("FLUX_POLICY_VALUE") && !shown.contains("s3cr3t-value"), "{shown}");
}
