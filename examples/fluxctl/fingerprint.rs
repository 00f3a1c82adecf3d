//! `identity --fingerprint` and `--visual`: an OpenSSH public key's fingerprint and randomart,
//! computed here from the key fluxd serves exactly as `ssh-keygen -l -v -E <hash>` prints them
//! (Flux v1 ran ssh-keygen in the daemon and showed its MD5 lines).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use md5::Digest;

/// The hash of a fingerprint, as `ssh-keygen -E` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Hash {
    /// `aa:bb:...`, what Flux v1's `fluxctl identity -l` showed.
    Md5,
    /// `SHA256:<base64>`, what `ssh-keygen -l` and GitHub show today.
    Sha256,
}

/// A public key read from its OpenSSH line (`<type> <base64> [comment]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    blob: Vec<u8>,
    /// The type as ssh-keygen titles it (`ED25519`, `RSA`, `ECDSA`, ...).
    kind: &'static str,
    /// Its size in bits.
    bits: u32,
}

impl PublicKey {
    /// Reads `line`; an error says what is wrong with it.
    pub(crate) fn parse(line: &str) -> Result<Self, String> {
        let mut fields = line.split_whitespace();
        let (Some(declared), Some(data)) = (fields.next(), fields.next()) else {
            return Err("the public key is not an OpenSSH key line (<type> <base64>)".into());
        };
        let blob = STANDARD.decode(data).map_err(|e| format!("the public key is not valid base64: {e}"))?;
        let mut reader = Reader(&blob);
        let name = reader.string()?;
        if name != declared.as_bytes() {
            return Err(format!("the public key says {declared} but holds {}", String::from_utf8_lossy(name)));
        }
        let (kind, bits) = match name {
            b"ssh-ed25519" => ("ED25519", 256),
            b"sk-ssh-ed25519@openssh.com" => ("ED25519-SK", 256),
            b"ssh-rsa" => {
                let _exponent = reader.string()?;
                ("RSA", mpint_bits(reader.string()?))
            }
            b"ssh-dss" => ("DSA", mpint_bits(reader.string()?)),
            b"ecdsa-sha2-nistp256" => ("ECDSA", 256),
            b"ecdsa-sha2-nistp384" => ("ECDSA", 384),
            b"ecdsa-sha2-nistp521" => ("ECDSA", 521),
            b"sk-ecdsa-sha2-nistp256@openssh.com" => ("ECDSA-SK", 256),
            other => return Err(format!("unknown public key type {}", String::from_utf8_lossy(other))),
        };
        Ok(PublicKey { blob, kind, bits })
    }

    /// The fingerprint as ssh-keygen prints it after the size: `MD5:aa:bb:...` or `SHA256:...`.
    pub(crate) fn fingerprint(&self, hash: Hash) -> String {
        match hash {
            Hash::Md5 => format!("MD5:{}", self.md5_hex()),
            Hash::Sha256 => format!("SHA256:{}", STANDARD_NO_PAD.encode(sha2::Sha256::digest(&self.blob))),
        }
    }

    /// The MD5 fingerprint without its prefix, as Flux v1's `identity -l` printed it.
    pub(crate) fn md5_hex(&self) -> String {
        md5::Md5::digest(&self.blob).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    /// The randomart ("drunken bishop") of the fingerprint, as `ssh-keygen -l -v` draws it:
    /// 11 lines, each ending in a newline.
    pub(crate) fn randomart(&self, hash: Hash) -> String {
        let (digest, name): (Vec<u8>, &str) = match hash {
            Hash::Md5 => (md5::Md5::digest(&self.blob).to_vec(), "MD5"),
            Hash::Sha256 => (sha2::Sha256::digest(&self.blob).to_vec(), "SHA256"),
        };
        randomart(&digest, &format!("[{} {}]", self.kind, self.bits), &format!("[{name}]"))
    }
}

/// The walk of OpenSSH's `fingerprint_randomart` over a 17x9 field.
fn randomart(digest: &[u8], title: &str, footer: &str) -> String {
    const WIDTH: usize = 17;
    const HEIGHT: usize = 9;
    const SYMBOLS: &[u8] = b" .o+=*BOX@%&#/^SE";
    let top = SYMBOLS.len() - 1;
    let mut field = [[0usize; HEIGHT]; WIDTH];
    let (mut x, mut y) = (WIDTH / 2, HEIGHT / 2);
    for byte in digest {
        let mut input = *byte;
        for _ in 0..4 {
            x = if input & 1 == 1 { (x + 1).min(WIDTH - 1) } else { x.saturating_sub(1) };
            y = if input & 2 == 2 { (y + 1).min(HEIGHT - 1) } else { y.saturating_sub(1) };
            if field[x][y] < top - 2 {
                field[x][y] += 1;
            }
            input >>= 2;
        }
    }
    field[WIDTH / 2][HEIGHT / 2] = top - 1;
    field[x][y] = top;
    let border = |label: &str| {
        let label = if label.len() > WIDTH { &label[..WIDTH] } else { label };
        let left = (WIDTH - label.len()) / 2;
        format!("+{}{label}{}+\n", "-".repeat(left), "-".repeat(WIDTH - left - label.len()))
    };
    let mut out = border(title);
    for row in 0..HEIGHT {
        out.push('|');
        out.extend((0..WIDTH).map(|col| char::from(SYMBOLS[field[col][row].min(top)])));
        out.push_str("|\n");
    }
    out + &border(footer)
}

/// The bits of an SSH `mpint` (big-endian, a leading zero byte when the top bit is set).
fn mpint_bits(n: &[u8]) -> u32 {
    let significant: &[u8] = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    let bytes = u32::try_from(significant.len()).unwrap_or(u32::MAX / 8);
    bytes * 8 - significant[0].leading_zeros()
}

/// Reads the length-prefixed strings of an SSH wire blob.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8], String> {
        let truncated = || "the public key is truncated".to_owned();
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| truncated())?;
        if rest.len() < len {
            return Err(truncated());
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// ssh-keygen's own `-l -v` output for `public` (first line, then the randomart), when
    /// ssh-keygen is installed.
    fn ssh_keygen(dir: &std::path::Path, public: &str, hash: &str) -> Option<(String, String)> {
        let file = dir.join("key.pub");
        std::fs::write(&file, public).expect("write the key");
        let out = Command::new("ssh-keygen").args(["-l", "-v", "-E", hash, "-f"]).arg(&file).output().ok()?;
        assert!(out.status.success(), "ssh-keygen -l: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let (first, art) = text.split_once('\n').expect("two parts");
        Some((first.to_owned(), art.to_owned()))
    }

    fn generated_keys(dir: &std::path::Path) -> Vec<String> {
        let mut keys = Vec::new();
        for (kind, bits) in [("ed25519", None), ("rsa", Some("2048")), ("ecdsa", Some("384"))] {
            let path = dir.join(format!("id_{kind}"));
            let mut command = Command::new("ssh-keygen");
            command.args(["-q", "-N", "", "-C", "flux@test", "-t", kind, "-f"]).arg(&path);
            if let Some(bits) = bits {
                command.args(["-b", bits]);
            }
            match command.status() {
                Ok(s) if s.success() => {}
                _ => continue,
            }
            keys.push(std::fs::read_to_string(path.with_extension("pub")).expect("the public key"));
        }
        keys
    }

    #[test]
    fn fingerprints_and_randomart_match_ssh_keygen() {
        let dir = tempfile::tempdir().expect("a directory");
        let keys = generated_keys(dir.path());
        if keys.is_empty() {
            assert!(std::env::var_os("FLUX_TEST_REQUIRE_SERVERS").is_none(), "ssh-keygen is missing");
            eprintln!("ssh-keygen is missing: skipped");
            return;
        }
        for public in keys {
            let key = PublicKey::parse(&public).expect("a key");
            for (hash, name) in [(Hash::Md5, "md5"), (Hash::Sha256, "sha256")] {
                let (first, art) = ssh_keygen(dir.path(), &public, name).expect("ssh-keygen");
                let expected = format!("{} {} flux@test ({})", key.bits, key.fingerprint(hash), key.kind);
                assert_eq!(first, expected, "the fingerprint line of {public}");
                assert_eq!(key.randomart(hash), art, "the randomart of {public}");
            }
        }
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        assert!(PublicKey::parse("").is_err());
        assert!(PublicKey::parse("ssh-ed25519 !!!").expect_err("bad base64").contains("base64"));
        // "ssh-rsa" declared, an ed25519 blob inside.
        let blob = STANDARD.encode([&[0, 0, 0, 11][..], b"ssh-ed25519"].concat());
        assert!(PublicKey::parse(&format!("ssh-rsa {blob}")).expect_err("mismatch").contains("holds ssh-ed25519"));
        let truncated = STANDARD.encode([0, 0, 0, 40, b's']);
        assert!(PublicKey::parse(&format!("ssh-rsa {truncated}")).expect_err("short").contains("truncated"));
    }
}
