//! The age identities sops would use, read where sops reads them: `SOPS_AGE_KEY` (keys
//! separated by spaces or lines), the file `SOPS_AGE_KEY_FILE` names, and the user's keys
//! file (`$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt`). All are
//! read, as sops does. Errors name the source and line, never a key.

use std::path::PathBuf;

use age::x25519;

/// The age identities found, and where they were looked for.
pub(crate) struct Identities {
    keys: Vec<x25519::Identity>,
    searched: Vec<String>,
}

impl Identities {
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identities, as the age decryptor takes them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k as &dyn age::Identity)
    }

    /// Where identities were looked for, for messages.
    pub(crate) fn searched(&self) -> String {
        self.searched.join(", ")
    }

    /// Reads the identities; `var` looks up a variable of the environment sops runs in.
    pub(crate) fn load(var: impl Fn(&str) -> Option<String>) -> Result<Identities, String> {
        let mut found = Identities { keys: Vec::new(), searched: Vec::new() };
        if let Some(keys) = var("SOPS_AGE_KEY") {
            found.searched.push("SOPS_AGE_KEY".into());
            found.add("SOPS_AGE_KEY", &keys, true)?;
        }
        if let Some(file) = var("SOPS_AGE_KEY_FILE") {
            let what = format!("SOPS_AGE_KEY_FILE ({file})");
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {what}: {e}"))?;
            found.add(&what, &text, false)?;
            found.searched.push(what);
        }
        if let Some(file) = default_keys_file(&var) {
            match std::fs::read_to_string(&file) {
                Ok(text) => found.add(&file.display().to_string(), &text, false)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
            }
            found.searched.push(file.display().to_string());
        }
        Ok(found)
    }

    /// Adds the identities of `text`. Lines of age plugins and post-quantum keys are left to
    /// the sops program.
    fn add(&mut self, source: &str, text: &str, several_per_line: bool) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = if several_per_line { line.split_whitespace().collect() } else { vec![line] };
            for word in words {
                if word.starts_with("AGE-PLUGIN-") || word.starts_with("AGE-SECRET-KEY-PQ-") {
                    continue;
                }
                let key = word
                    .parse::<x25519::Identity>()
                    .map_err(|_| format!("line {} of {source} is not an age identity (AGE-SECRET-KEY-1...)", i + 1))?;
                self.keys.push(key);
            }
        }
        Ok(())
    }
}

/// sops's user keys file: Go's `os.UserConfigDir()` joined with `sops/age/keys.txt`.
fn default_keys_file(var: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let config = match var("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(config.join("sops").join("age").join("keys.txt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway key made by age-keygen for this test.
    const KEY: &str = "AGE-SECRET-KEY-1N8M32QVF8AQLW487EZYP9CSK9982H6SQPY2HFA5ASK587FHJK6ESXKK0CT";

    #[test]
    fn keys_come_from_every_source_sops_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.txt");
        std::fs::write(&file, format!("# created: today\n# public key: age1...\n{KEY}\n")).unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("sops/age")).unwrap();
        std::fs::write(config.join("sops/age/keys.txt"), format!("{KEY}\nAGE-PLUGIN-YUBIKEY-1XYZ\n")).unwrap();
        let vars = [
            ("SOPS_AGE_KEY", format!("{KEY} {KEY}")),
            ("SOPS_AGE_KEY_FILE", file.display().to_string()),
            ("XDG_CONFIG_HOME", config.display().to_string()),
        ];
        let ids = Identities::load(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())).unwrap();
        assert_eq!(ids.keys.len(), 4, "two from SOPS_AGE_KEY, one from each file, the plugin left out");
        assert!(ids.searched().contains("SOPS_AGE_KEY_FILE"), "{}", ids.searched());
    }

    #[test]
    fn a_bad_line_is_named_without_its_content() {
        let vars = [("SOPS_AGE_KEY", "AGE-SECRET-KEY-1NOTAKEY".to_owned())];
        let Err(err) = Identities::load(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())) else {
            panic!("a bad key is an error")
        };
        assert!(err.contains("line 1 of SOPS_AGE_KEY") && !err.contains("NOTAKEY"), "{err}");
    }
}
