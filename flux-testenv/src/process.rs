use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; another process could take it meanwhile,
/// which on a test machine it practically never does). A child forked by another thread at that
/// moment may hold the socket until it execs, so a server should be given a moment to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a loopback port")
}

/// Polls `ready` every 50 ms until it returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server started for a test: killed (by PID) and reaped when dropped. Its stdout and stderr go
/// to a log file, shown when the server fails to start.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command`, logging into `log_dir/<name>.log`.
    pub fn start(name: &str, mut command: Command, log_dir: &Path) -> std::io::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = command.stdin(Stdio::null()).stdout(out).stderr(err).spawn()?;
        Ok(ServerProcess { name: name.to_owned(), child, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds; panics with the server's log if it exits or times out first.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let mut exited = None;
        let ok = wait_until(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            ready()
        });
        if let Some(status) = exited {
            panic!("{} exited while starting ({status}); its log:\n{}", self.name, self.log());
        }
        if !ok {
            panic!("{} was not ready after {timeout:?}; its log:\n{}", self.name, self.log());
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_stopped_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut server = ServerProcess::start("sleeper", command, dir.path()).unwrap();
        server.wait_ready(Duration::from_secs(1), || true);
        let pid = server.pid();
        let proc_path = PathBuf::from(format!("/proc/{pid}"));
        assert!(proc_path.exists());
        drop(server);
        assert!(!proc_path.exists(), "the process must be gone after drop");
    }

    #[test]
    fn free_ports_are_bindable() {
        // Another test thread forking at the wrong moment holds the socket briefly (until exec).
        let port = free_port();
        assert!(wait_until(Duration::from_secs(2), || TcpListener::bind(("127.0.0.1", port)).is_ok()));
    }
}
