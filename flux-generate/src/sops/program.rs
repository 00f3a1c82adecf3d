//! `sops --decrypt` for what the native path does not do (PGP, KMS, Vault, Shamir key groups,
//! age plugins): the ciphertext written to a private temporary file, the plaintext read from
//! the program's stdout into memory only, its stderr scrubbed of anything that may be secret.

use std::path::Path;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use tokio::io::AsyncReadExt;

use super::tree::Format;

/// How much of sops's stderr an error keeps.
const STDERR_CHARS: usize = 600;
/// How much plaintext sops may print: the manifest reader's own ceiling for generated output.
const MAX_STDOUT: u64 = 64 << 20;

/// Decrypts `content` with the program at `program`, in the environment `env` describes
/// (`None`: the daemon's own; `Some`: exactly those variables, with the daemon's `PATH`).
pub(crate) async fn decrypt(
    program: &Path,
    content: &[u8],
    format: Format,
    env: Option<&[(String, String)]>,
    timeout: Duration,
) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory for sops: {e}"))?;
    let file = dir.path().join(format!("encrypted.{}", format.name()));
    std::fs::write(&file, content).map_err(|e| format!("cannot write the file for sops: {e}"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(["--decrypt", "--input-type", format.name(), "--output-type", format.name()])
        .arg(&file)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(vars) = env {
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("sops's output could not be read".into());
    };
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async { stdout.take(MAX_STDOUT + 1).read_to_end(&mut out).await };
        let read_err = async { stderr.take(64 << 10).read_to_end(&mut err).await };
        let (r1, r2, status) = tokio::join!(read_out, read_err, child.wait());
        r1.and(r2).map_err(|e| format!("reading sops's output: {e}"))?;
        let status = status.map_err(|e| format!("waiting for sops: {e}"))?;
        Ok::<_, String>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(timeout, run).await.map_err(|_| {
        format!("sops --decrypt ran past the timeout of {} and was killed", humantime::format_duration(timeout))
    })??;
    if !status.success() {
        return Err(format!("sops --decrypt failed ({status}): {}", scrub(&String::from_utf8_lossy(&err))));
    }
    if out.len() as u64 > MAX_STDOUT {
        return Err(format!("sops --decrypt printed over {MAX_STDOUT} bytes"));
    }
    String::from_utf8(out).map_err(|_| "sops --decrypt printed text that is not UTF-8".to_owned())
}

/// sops's stderr without what could be secret: age keys, encrypted values, long hex (MACs
/// are hashes of the plaintext) and base64 runs; its last lines only.
pub(crate) fn scrub(stderr: &str) -> String {
    static SECRETS: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"AGE-SECRET-KEY-[0-9A-Za-z-]+|ENC\[[^\]]*\]|[0-9A-Fa-f]{24,}|[A-Za-z0-9+/=]{40,}").ok()
    });
    let text = match SECRETS.as_ref() {
        Some(re) => re.replace_all(stderr, "[redacted]").into_owned(),
        None => "[stderr withheld]".to_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let skip = text.chars().count().saturating_sub(STDERR_CHARS);
    text.chars().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_keys_values_and_hashes() {
        let stderr = "Failed to verify data integrity. expected mac \"0A1B2C3D4E5F60718293A4B5C6D7E8F9\", got \"FFEE\"\n\
            key AGE-SECRET-KEY-1N8M32QVF8AQLW487EZYP9CSK9982H6SQPY2HFA5ASK587FHJK6ESXKK0CT \
            value ENC[AES256_GCM,data:abc=,iv:x,tag:y,type:str]";
        let scrubbed = scrub(stderr);
        assert!(scrubbed.starts_with("Failed to verify data integrity."), "{scrubbed}");
        for secret in ["0A1B2C3D4E5F", "AGE-SECRET-KEY-1N8M", "data:abc"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
    }
}
