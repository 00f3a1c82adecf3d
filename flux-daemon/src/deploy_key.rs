//! A unit's git deploy key: its public half for `GET /identity`, and `POST /identity/regenerate`
//! (Flux v1's key ring).

use async_trait::async_trait;
use base64::Engine as _;
use flux_core::Result;
use sha2::Digest;

/// Where a unit's ssh deploy key comes from, and how it is replaced.
///
/// Contract: [`DeployKey::public_key`] is the public half (OpenSSH `type base64 [comment]`) of
/// the private key the unit's source uses now. After [`DeployKey::regenerate`] returns `Ok`, the
/// new key is stored wherever it lives (a Kubernetes Secret, say) and the source uses it from its
/// next network operation; on `Err`, the previous key stays in use and in store. No method
/// ever shows the private key (in errors, logs or `Debug`).
#[async_trait]
pub trait DeployKey: Send + Sync {
    /// The public half of the key in use.
    fn public_key(&self) -> Option<String>;

    /// Makes a new key pair, stores it and puts it in use; its public half.
    async fn regenerate(&self) -> Result<String>;
}

/// The fingerprint of an OpenSSH public key line as `ssh-keygen -l` prints it: `SHA256:` and
/// the unpadded base64 of the SHA-256 of the key blob; `None` when the line is not a key.
pub fn fingerprint(public_key: &str) -> Option<String> {
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(blob).ok()?;
    let digest = sha2::Sha256::digest(&bytes);
    Some(format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_ssh_keygens() {
        // `ssh-keygen -l -f` of this key printed this fingerprint (OpenSSH 9.2).
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOteurk3g3wAj4imBGQNhQmaE/wS6+y7fuufm7RRa0iv flux";
        assert_eq!(fingerprint(key).as_deref(), Some(EXPECTED));
        assert_eq!(fingerprint("not a key"), None);
        assert_eq!(fingerprint(""), None);
    }

    const EXPECTED: &str = "SHA256:zuUATAI3KwYTUmGDoU4Op533sAJn+pIzbAj8uU4DD54";
}
