//! Signing commits and tags with `gpg` or `ssh-keygen -Y sign`, as `git commit -S` and
//! `git tag -s` do.

use std::io::Write;
use std::process::{Command, Stdio};

use flux_core::{Error, Result};

use crate::config::Signing;

/// The armored signature of `payload` (a commit without its `gpgsig` header, or a tag without
/// its signature); `what` names the object in errors.
pub(crate) fn sign(signing: &Signing, payload: &[u8], what: &str) -> Result<String> {
    let mut command = match signing {
        Signing::Gpg { key_id, gnupg_home } => {
            let mut c = Command::new("gpg");
            c.args(["--batch", "--status-fd=2", "--armor", "--detach-sign", "--local-user", key_id]);
            if let Some(home) = gnupg_home {
                c.env("GNUPGHOME", home);
            }
            c
        }
        Signing::Ssh { private_key } => {
            let mut c = Command::new("ssh-keygen");
            c.args(["-Y", "sign", "-n", "git", "-f"]).arg(private_key);
            c
        }
    };
    let program = format!("{:?}", command.get_program());
    let failed = |e: &dyn std::fmt::Display| Error::other(format!("signing {what} with {program}: {e}"));
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| failed(&e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(payload).map_err(|e| failed(&e))?;
    }
    let output = child.wait_with_output().map_err(|e| failed(&e))?;
    if !output.status.success() {
        return Err(failed(&String::from_utf8_lossy(&output.stderr).trim()));
    }
    String::from_utf8(output.stdout).map_err(|e| failed(&e))
}
