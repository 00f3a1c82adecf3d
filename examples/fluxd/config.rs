//! `--config FILE`: several units in one YAML file. Each entry of `units:` is keyed by the
//! per-unit flags without their dashes (`git-url`, `git-path`, `sync-garbage-collection`, ...)
//! plus `name`; the other (daemon-wide) flags are accepted as top-level keys. Values are read
//! by the same parser as the flags (a list where the flag repeats, `true` for a switch), so
//! names, defaults and checks are the flags' own. An unknown key is an error naming it and its
//! line.

use std::collections::BTreeSet;
use std::fmt;

use clap::{Args, CommandFactory, Parser};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::flags::{Flags, UnitFlags};

/// One unit of the file: its name, the line it starts on, and its settings as flags.
#[derive(Debug)]
pub(crate) struct UnitEntry {
    /// `name`.
    pub name: String,
    /// The line of its `name` key.
    pub line: u64,
    /// Its keys as command-line flags (`--git-url=...`).
    pub args: Vec<String>,
}

/// The file: daemon-wide settings as flags, and the units.
#[derive(Debug)]
pub(crate) struct ConfigFile {
    /// The top-level keys as command-line flags.
    pub daemon_args: Vec<String>,
    /// The units, in file order.
    pub units: Vec<UnitEntry>,
}

/// A YAML value with where it is.
type Value = Spanned<serde_json::Value>;

/// The keys of a mapping in order, with their lines; `units:` read as a list of mappings.
#[derive(Debug, Default)]
struct Entries {
    keys: Vec<(Spanned<String>, Value)>,
    units: Option<(u64, Vec<Entries>)>,
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Entries::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if key.value == "units" {
                        entries.units = Some((key.referenced.line(), map.next_value::<Vec<Entries>>()?));
                    } else {
                        entries.keys.push((key, map.next_value::<Value>()?));
                    }
                }
                Ok(entries)
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The long names of `command`'s flags.
fn flag_names(command: &clap::Command) -> BTreeSet<String> {
    command.get_arguments().filter_map(|a| a.get_long()).map(str::to_owned).collect()
}

/// The per-unit flag names.
pub(crate) fn unit_keys() -> BTreeSet<String> {
    flag_names(&UnitFlags::augment_args(clap::Command::new("unit")))
}

/// The daemon-wide flag names (every flag but the per-unit ones, `--config` and the one-shot
/// modes).
fn daemon_keys() -> BTreeSet<String> {
    let units = unit_keys();
    let exclude = ["config", "once", "dry-run", "help", "version"];
    flag_names(&Flags::command()).into_iter().filter(|k| !units.contains(k) && !exclude.contains(&k.as_str())).collect()
}

/// `key: value` as flags: `--key=true|false` for a boolean, one flag per list item.
fn to_args(file: &str, key: &Spanned<String>, value: &Value, args: &mut Vec<String>) -> Result<(), String> {
    let line = key.referenced.line();
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{file}:{line}: {}: expected a text, a number, true/false or a list of them", key.value)),
    };
    match &value.value {
        serde_json::Value::Bool(b) => args.push(format!("--{}={b}", key.value)),
        serde_json::Value::Null => {}
        serde_json::Value::Array(items) => {
            for item in items {
                args.push(format!("--{}={}", key.value, scalar(item)?));
            }
        }
        other => args.push(format!("--{}={}", key.value, scalar(other)?)),
    }
    Ok(())
}

/// Reads `text` (the file `file`).
pub(crate) fn parse(file: &str, text: &str) -> Result<ConfigFile, String> {
    let top: Entries = serde_saphyr::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let (daemon_allowed, unit_allowed) = (daemon_keys(), unit_keys());
    let mut daemon_args = Vec::new();
    for (key, value) in &top.keys {
        if !daemon_allowed.contains(&key.value) {
            let hint = if unit_allowed.contains(&key.value) { " (a per-unit key: put it in a unit)" } else { "" };
            return Err(format!("{file}:{}: unknown key {:?}{hint}", key.referenced.line(), key.value));
        }
        to_args(file, key, value, &mut daemon_args)?;
    }
    let Some((units_line, entries)) = top.units else {
        return Err(format!("{file}: no units: (a list of units, each with a name and a git-url)"));
    };
    if entries.is_empty() {
        return Err(format!("{file}:{units_line}: units: is empty"));
    }
    let mut units: Vec<UnitEntry> = Vec::new();
    for entry in entries {
        if let Some((line, _)) = entry.units {
            return Err(format!("{file}:{line}: units: inside a unit"));
        }
        let mut name = None;
        let mut args = Vec::new();
        for (key, value) in &entry.keys {
            let line = key.referenced.line();
            if key.value == "name" {
                let serde_json::Value::String(n) = &value.value else {
                    return Err(format!("{file}:{line}: name: expected a text"));
                };
                flux_daemon::check_unit_name(n).map_err(|e| format!("{file}:{line}: {e}"))?;
                name = Some((n.clone(), line));
                continue;
            }
            if !unit_allowed.contains(&key.value) {
                let hint =
                    if daemon_allowed.contains(&key.value) { " (a daemon-wide key: put it at the top)" } else { "" };
                return Err(format!("{file}:{line}: unknown key {:?}{hint}", key.value));
            }
            to_args(file, key, value, &mut args)?;
        }
        let first_line = entry.keys.first().map_or(units_line, |(k, _)| k.referenced.line());
        let Some((name, line)) = name else {
            return Err(format!("{file}:{first_line}: a unit without a name"));
        };
        if let Some(other) = units.iter().find(|u| u.name == name) {
            return Err(format!("{file}:{line}: a second unit named {name} (the first is at line {})", other.line));
        }
        units.push(UnitEntry { name, line, args });
    }
    Ok(ConfigFile { daemon_args, units })
}

/// A unit's flags from its entry.
pub(crate) fn unit_flags(file: &str, entry: &UnitEntry) -> Result<UnitFlags, String> {
    #[derive(Parser)]
    #[command(name = "unit", no_binary_name = true)]
    struct One {
        #[command(flatten)]
        unit: UnitFlags,
    }
    let one = One::try_parse_from(&entry.args)
        .map_err(|e| format!("{file}:{}: unit {}: {}", entry.line, entry.name, e.render().to_string().trim()))?;
    one.unit.validate().map_err(|e| format!("{file}:{}: unit {}: {e}", entry.line, entry.name))?;
    Ok(one.unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
listen: 127.0.0.1:3031
units:
- name: shop
  git-url: git://git.example/shop.git
  git-branch: main
  git-path: [clusters/prod]
  git-poll-interval: 30s
  sync-garbage-collection: true
  k8s-allow-namespace: [shop]
- name: shop-staging
  git-url: git://git.example/shop.git
  git-path: [clusters/staging]
";

    #[test]
    fn units_are_keyed_by_the_flags_without_dashes() {
        let config = parse("fluxd.yaml", FILE).expect("parses");
        assert_eq!(config.daemon_args, ["--listen=127.0.0.1:3031"]);
        assert_eq!(config.units.len(), 2);
        let shop = unit_flags("fluxd.yaml", &config.units[0]).expect("shop");
        assert_eq!(config.units[0].line, 3);
        assert_eq!(shop.paths(), ["clusters/prod"]);
        assert_eq!(shop.git_poll_interval, std::time::Duration::from_secs(30));
        assert!(shop.sync_garbage_collection);
        assert_eq!(shop.k8s_allow_namespace, ["shop"]);
        let staging = unit_flags("fluxd.yaml", &config.units[1]).expect("staging");
        assert_eq!(staging.git_branch, "master", "the flag's default (Flux v1's)");
        assert!(!staging.sync_garbage_collection);
    }

    #[test]
    fn booleans_and_v1_keys_in_a_unit() {
        let text = "listen: ':3031'\nunits:\n- name: a\n  git-url: /r\n  git-readonly: true\n  \
                    sync-garbage-collection: false\n  git-label: prod\n  k8s-namespace-whitelist: [x]\n  \
                    k8s-secret-name: key\n  sync-state: secret\n";
        let config = parse("f.yaml", text).expect("parses");
        assert_eq!(config.daemon_args, ["--listen=:3031"]);
        let a = unit_flags("f.yaml", &config.units[0]).expect("unit");
        assert!(a.git_readonly && !a.sync_garbage_collection);
        assert_eq!(a.sync_tag(), "prod");
        assert_eq!(a.allowed_namespaces(), ["x"]);
        assert_eq!(a.k8s_secret_name, "key");
        assert_eq!(a.sync_state(), crate::flags::SyncState::Secret);
    }

    #[test]
    fn the_prune_guard_is_a_unit_key() {
        let text = "units:\n- name: a\n  git-url: /r\n  sync-prune-guard: 30%\n- name: b\n  git-url: /r\n  \
                    sync-prune-guard: off\n- name: c\n  git-url: /r\n";
        let config = parse("f.yaml", text).expect("parses");
        let guard = |i: usize| unit_flags("f.yaml", &config.units[i]).expect("unit").sync_prune_guard.0;
        assert_eq!((guard(0), guard(1), guard(2)), (Some(30), None, Some(50)));
    }

    #[test]
    fn health_and_dependency_keys_in_a_unit() {
        let text = "units:\n- name: db\n  git-url: /r\n  wait: true\n  timeout: 90s\n\
                    - name: app\n  git-url: /r\n  depends-on: [db]\n  health-check: ['apps/v1:db:deployment/postgres']\n";
        let config = parse("f.yaml", text).expect("parses");
        let db = unit_flags("f.yaml", &config.units[0]).expect("db");
        assert!(db.wait);
        assert_eq!(db.timeout, std::time::Duration::from_secs(90));
        let app = unit_flags("f.yaml", &config.units[1]).expect("app");
        assert!(!app.wait, "off by default");
        assert_eq!(app.timeout, std::time::Duration::from_secs(300), "5m by default");
        assert_eq!(app.depends_on, ["db"]);
        assert_eq!(app.health_check.len(), 1);
        assert_eq!(app.health_check[0].api_version, "apps/v1");
        assert_eq!(app.health_check[0].id.to_string(), "db:deployment/postgres");
        let bad = "units:\n- name: a\n  git-url: /r\n  health-check: [deployment/web]\n";
        let config = parse("f.yaml", bad).expect("parses");
        let e = unit_flags("f.yaml", &config.units[0]).expect_err("no apiVersion");
        assert!(e.contains("deployment/web") && e.contains("API_VERSION:NAMESPACE:KIND/NAME"), "{e}");
    }

    #[test]
    fn unknown_keys_duplicate_and_bad_names_are_errors_with_their_line() {
        let typo = FILE.replace("git-poll-interval", "git-pol-interval");
        let e = parse("fluxd.yaml", &typo).expect_err("unknown key");
        assert_eq!(e, "fluxd.yaml:7: unknown key \"git-pol-interval\"");
        let top = format!("git-url: x\n{FILE}");
        assert!(
            parse("f.yaml", &top)
                .expect_err("unit key at the top")
                .starts_with("f.yaml:1: unknown key \"git-url\" (a per-unit")
        );
        let twice = FILE.replace("shop-staging", "shop");
        assert!(parse("f.yaml", &twice).expect_err("twice").contains("f.yaml:10: a second unit named shop"));
        let upper = FILE.replace("name: shop\n", "name: Shop\n");
        assert!(parse("f.yaml", &upper).expect_err("bad name").starts_with("f.yaml:3:"));
        let bad_value = FILE.replace("30s", "soon");
        let config = parse("f.yaml", &bad_value).expect("parses");
        let e = unit_flags("f.yaml", &config.units[0]).expect_err("bad duration");
        assert!(e.starts_with("f.yaml:3: unit shop:") && e.contains("soon"), "{e}");
        let no_url = "units:\n- name: a\n  git-path: [x]\n";
        let config = parse("f.yaml", no_url).expect("parses");
        assert!(unit_flags("f.yaml", &config.units[0]).expect_err("no url").contains("--git-url"));
    }
}
