//! Flux v1's `.flux.yaml` files: which commands generate a directory's manifests, and how
//! changes to its workloads are written back.
//!
//! ```yaml
//! version: 1
//! commandUpdated:            # or patchUpdated: or scanForFiles: {}
//!   generators:
//!     - command: kustomize build .
//!   updaters:
//!     - containerImage:
//!         command: ./set-image.sh
//!       policy:
//!         command: ./set-policy.sh
//! ```
//!
//! `patchUpdated` has `generators` and a `patchFile` (relative to the directory the file applies
//! to) instead of `updaters`; `scanForFiles` means "read the plain manifests", as if there were no
//! `.flux.yaml`. Commands run as described in [`command`](crate::command); updaters get the
//! variables of [`updater_env`](crate::updater_env).

use flux_core::source::normalize_path;
use flux_core::{Error, Location, Result};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_saphyr::Spanned;

/// The name Flux v1 looks for, in the sync path and each of its parents.
pub const FILE_NAME: &str = ".flux.yaml";

/// The largest `.flux.yaml` read (1 MiB); a real one is a few lines.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The most YAML events aliases may replay in a `.flux.yaml`, against alias bombs.
const MAX_ALIAS_EVENTS: usize = 10_000;

/// A parsed and checked `.flux.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxYaml {
    /// Its path, relative to the repository root.
    pub file: String,
    /// What it says.
    pub config: FluxYamlConfig,
}

/// The three kinds of `.flux.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FluxYamlConfig {
    /// Generators make the manifests; updater commands edit the files for releases and policies.
    CommandUpdated {
        /// Run in order; their outputs are concatenated. Never empty.
        generators: Vec<ConfigCommand>,
        /// Run in order for every image or policy change.
        updaters: Vec<Updater>,
    },
    /// Generators make the manifests; changes are kept in a merge patch file applied to them.
    PatchUpdated {
        /// Run in order; their outputs are concatenated. Never empty.
        generators: Vec<ConfigCommand>,
        /// The patch file, relative to the directory the `.flux.yaml` applies to, normalised
        /// (it may reach up with `..` but never above that directory's root).
        patch_file: String,
    },
    /// No generation: the directory's plain manifests are read.
    ScanForFiles,
}

/// One command of a `.flux.yaml`, with the line it is written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigCommand {
    /// The shell text.
    pub command: String,
    /// The 1-based line of the command in the file.
    pub line: usize,
}

/// The commands run for one kind of change; at least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updater {
    /// Run once per container whose image changes.
    pub container_image: Option<ConfigCommand>,
    /// Run once per policy set or removed.
    pub policy: Option<ConfigCommand>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    #[serde(default)]
    version: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    command_updated: Option<Spanned<Option<RawCommandUpdated>>>,
    #[serde(default, deserialize_with = "present")]
    patch_updated: Option<Spanned<Option<RawPatchUpdated>>>,
    #[serde(default, deserialize_with = "present")]
    scan_for_files: Option<Spanned<Option<RawScanForFiles>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCommandUpdated {
    #[serde(default)]
    generators: Vec<RawCommand>,
    #[serde(default)]
    updaters: Vec<Spanned<RawUpdater>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPatchUpdated {
    #[serde(default)]
    generators: Vec<RawCommand>,
    #[serde(default)]
    patch_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanForFiles {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    command: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawUpdater {
    #[serde(default)]
    container_image: Option<RawCommand>,
    #[serde(default)]
    policy: Option<RawCommand>,
}

/// A key that is present, even with an empty (null) value: `scanForFiles:` counts as given.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Spanned<Option<T>>>, D::Error> {
    Spanned::<Option<T>>::deserialize(d).map(Some)
}

fn line_of<T>(spanned: &Spanned<T>) -> usize {
    usize::try_from(spanned.referenced.line()).unwrap_or(1).max(1)
}

/// Parses and checks the `.flux.yaml` at `file` (a repository path, named in errors).
///
/// # Errors
/// [`Error::InvalidInput`] at `file` and the line at fault when the file is over [`MAX_FILE_BYTES`],
/// the YAML is invalid (aliases replaying more than 10,000 events included), a key is
/// unknown, `version` is not 1, not exactly one of `commandUpdated`, `patchUpdated` and
/// `scanForFiles` is given, there are no generators, a command is empty, an updater has no
/// command, or `patchFile` is missing, absolute or leaves the directory.
pub fn parse_flux_yaml(file: &str, text: &str) -> Result<FluxYaml> {
    let at = |line: usize| Location::line(file, line);
    if text.len() > MAX_FILE_BYTES {
        return Err(Error::invalid(
            Location::file(file),
            format!("the file is {} bytes, over the limit of {MAX_FILE_BYTES} bytes", text.len()),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw: Option<RawFile> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| yaml_error(file, &e))?;
    let raw =
        raw.ok_or_else(|| Error::invalid(at(1), "the file is empty; it needs `version: 1` and a configuration"))?;
    match &raw.version {
        None => return Err(Error::invalid(at(1), "`version` is missing; the only version is 1")),
        Some(v) if v.value != 1 => {
            return Err(Error::invalid(at(line_of(v)), format!("`version` must be 1, not {}", v.value)));
        }
        Some(_) => {}
    }
    let section_line = |key: &str, value: usize| key_line(text, key).unwrap_or(value);
    let mut given: Vec<(&str, usize)> = [
        ("commandUpdated", raw.command_updated.as_ref().map(line_of)),
        ("patchUpdated", raw.patch_updated.as_ref().map(line_of)),
        ("scanForFiles", raw.scan_for_files.as_ref().map(line_of)),
    ]
    .into_iter()
    .filter_map(|(key, line)| Some((key, section_line(key, line?))))
    .collect();
    given.sort_by_key(|(_, line)| *line);
    let config = match (given.as_slice(), raw) {
        ([(_, line)], RawFile { command_updated: Some(section), .. }) => {
            let line = *line;
            let body = section.value.unwrap_or_default();
            FluxYamlConfig::CommandUpdated {
                generators: generators(file, line, "commandUpdated", body.generators)?,
                updaters: body.updaters.into_iter().map(|u| updater(file, u)).collect::<Result<_>>()?,
            }
        }
        ([(_, line)], RawFile { patch_updated: Some(section), .. }) => {
            let line = *line;
            let body = section.value.unwrap_or_default();
            let generators = generators(file, line, "patchUpdated", body.generators)?;
            let patch_file = body
                .patch_file
                .ok_or_else(|| Error::invalid(at(line), "`patchUpdated` needs a `patchFile`"))
                .and_then(|p| patch_file(file, &p))?;
            FluxYamlConfig::PatchUpdated { generators, patch_file }
        }
        ([_], _) => FluxYamlConfig::ScanForFiles,
        ([], _) => {
            return Err(Error::invalid(at(1), "needs one of `commandUpdated`, `patchUpdated` or `scanForFiles`"));
        }
        ([.., (second, line)], _) => {
            return Err(Error::invalid(
                at(*line),
                format!(
                    "`{second}` given alongside `{}`; a .flux.yaml has exactly one of `commandUpdated`, \
                     `patchUpdated` or `scanForFiles`",
                    given[0].0
                ),
            ));
        }
    };
    Ok(FluxYaml { file: file.to_owned(), config })
}

fn generators(file: &str, line: usize, section: &str, raw: Vec<RawCommand>) -> Result<Vec<ConfigCommand>> {
    if raw.is_empty() {
        return Err(Error::invalid(Location::line(file, line), format!("`{section}` needs at least one generator")));
    }
    raw.into_iter().map(|c| command(file, c)).collect()
}

fn command(file: &str, raw: RawCommand) -> Result<ConfigCommand> {
    let line = line_of(&raw.command);
    if raw.command.value.trim().is_empty() {
        return Err(Error::invalid(Location::line(file, line), "`command` is empty"));
    }
    Ok(ConfigCommand { command: raw.command.value, line })
}

fn updater(file: &str, raw: Spanned<RawUpdater>) -> Result<Updater> {
    let line = line_of(&raw);
    let RawUpdater { container_image, policy } = raw.value;
    if container_image.is_none() && policy.is_none() {
        return Err(Error::invalid(Location::line(file, line), "an updater needs `containerImage` or `policy`"));
    }
    Ok(Updater {
        container_image: container_image.map(|c| command(file, c)).transpose()?,
        policy: policy.map(|c| command(file, c)).transpose()?,
    })
}

/// `patchFile` resolved lexically: `a/../b` is `b`; `../b` would leave the directory.
fn patch_file(file: &str, raw: &Spanned<String>) -> Result<String> {
    let bad =
        |why: &str| Error::invalid(Location::line(file, line_of(raw)), format!("`patchFile` {:?} {why}", raw.value));
    if raw.value.starts_with('/') {
        return Err(bad("must be relative"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.value.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(|| bad("leaves the directory the .flux.yaml applies to"))?;
            }
            p => parts.push(p),
        }
    }
    // Rejects NUL and backslashes as every repository path does.
    let resolved = normalize_path(&parts.join("/")).map_err(|_| bad("is not a valid path"))?;
    if resolved.is_empty() {
        return Err(bad("names no file"));
    }
    Ok(resolved)
}

/// The line of a top-level `key:` written in block style. A value's span starts at its content
/// (for a block mapping, its first key), so the key's own line is looked up in the text.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))).map(|i| i + 1)
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    options
}

fn yaml_error(file: &str, error: &serde_saphyr::Error) -> Error {
    let line = error.location().map_or(1, |l| usize::try_from(l.line()).unwrap_or(1).max(1));
    let text = error.without_snippet().to_string();
    let mut message = text.lines().next().unwrap_or("invalid YAML").trim_start_matches("error: ");
    // The location leads the error already.
    if let Some((before, at)) = message.rsplit_once(" at line ")
        && at.split_once(", column ").is_some_and(|(l, c)| [l, c].iter().all(|n| n.bytes().all(|b| b.is_ascii_digit())))
    {
        message = before;
    }
    Error::invalid(Location::line(file, line), format!("invalid .flux.yaml: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FluxYaml> {
        parse_flux_yaml("staging/.flux.yaml", text)
    }

    /// The error's line and message.
    fn fails(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::InvalidInput { location, message }) => {
                assert_eq!(location.file, "staging/.flux.yaml");
                (location.line.unwrap_or(0), message)
            }
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }

    fn cmd(command: &str, line: usize) -> ConfigCommand {
        ConfigCommand { command: command.to_owned(), line }
    }

    #[test]
    fn command_updated_with_lines() {
        let text = "\
version: 1
commandUpdated:
  generators:
    - command: kustomize build .
    - command: >-
        helm template ../charts/app
        -f overrides.yaml
  updaters:
    - containerImage:
        command: sh set-image.sh
      policy:
        command: sh set-policy.sh
    - policy:
        command: echo policy
";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.file, "staging/.flux.yaml");
        assert_eq!(
            parsed.config,
            FluxYamlConfig::CommandUpdated {
                generators: vec![
                    cmd("kustomize build .", 4),
                    // A folded command is located at its text.
                    cmd("helm template ../charts/app -f overrides.yaml", 6),
                ],
                updaters: vec![
                    Updater {
                        container_image: Some(cmd("sh set-image.sh", 10)),
                        policy: Some(cmd("sh set-policy.sh", 12))
                    },
                    Updater { container_image: None, policy: Some(cmd("echo policy", 14)) },
                ],
            }
        );
    }

    #[test]
    fn command_updated_without_updaters() {
        let parsed = parse("version: 1\ncommandUpdated:\n  generators:\n  - command: cat all.yaml\n").unwrap();
        let FluxYamlConfig::CommandUpdated { generators, updaters } = parsed.config else { panic!() };
        assert_eq!(generators, [cmd("cat all.yaml", 4)]);
        assert!(updaters.is_empty());
    }

    #[test]
    fn patch_updated_and_scan_for_files() {
        let text = "version: 1\npatchUpdated:\n  generators:\n    - command: kustomize build .\n  patchFile: ./patches/../flux-patch.yaml\n";
        assert_eq!(
            parse(text).unwrap().config,
            FluxYamlConfig::PatchUpdated {
                generators: vec![cmd("kustomize build .", 4)],
                patch_file: "flux-patch.yaml".to_owned()
            }
        );
        for scan in ["version: 1\nscanForFiles: {}\n", "version: 1\nscanForFiles:\n"] {
            assert_eq!(parse(scan).unwrap().config, FluxYamlConfig::ScanForFiles, "{scan}");
        }
    }

    #[test]
    fn bad_versions_at_their_line() {
        assert_eq!(fails("scanForFiles: {}\nversion: 2\n"), (2, "`version` must be 1, not 2".to_owned()));
        assert_eq!(fails("scanForFiles: {}\n\nversion: \"1\"\n").0, 3);
        let (line, message) = fails("scanForFiles: {}\n");
        assert_eq!(line, 1);
        assert!(message.contains("`version` is missing"), "{message}");
    }

    #[test]
    fn exactly_one_configuration() {
        let (line, message) = fails("version: 1\n");
        assert_eq!(line, 1);
        assert!(message.contains("needs one of"), "{message}");
        let text = "version: 1\ncommandUpdated:\n  generators:\n    - command: a\nscanForFiles: {}\n";
        let (line, message) = fails(text);
        assert_eq!(line, 5);
        assert!(message.contains("`scanForFiles` given alongside `commandUpdated`"), "{message}");
        let (line, message) = fails("scanForFiles: {}\nversion: 1\npatchUpdated: {}\n");
        assert_eq!(line, 3);
        assert!(message.contains("`patchUpdated` given alongside `scanForFiles`"), "{message}");
        assert_eq!(parse("\u{feff}version: 1\nscanForFiles: {}\n").unwrap().config, FluxYamlConfig::ScanForFiles);
    }

    #[test]
    fn unknown_keys_are_rejected_at_their_line() {
        let (line, message) = fails("version: 1\nscanForFiles: {}\ncommandUpdate: {}\n");
        assert_eq!(line, 3);
        assert_eq!(
            message,
            "invalid .flux.yaml: unknown field `commandUpdate`, expected one of version, commandUpdated, \
             patchUpdated, scanForFiles"
        );
        let text = "version: 1\ncommandUpdated:\n  generators:\n    - command: a\n      args: [b]\n";
        let (line, message) = fails(text);
        assert_eq!(line, 5);
        assert!(message.contains("args"), "{message}");
        let (line, message) = fails("version: 1\nscanForFiles: {paths: [a]}\n");
        assert_eq!(line, 2);
        assert!(message.contains("paths"), "{message}");
        let text = "version: 1\npatchUpdated:\n  generators:\n    - command: a\n  patchFile: p.yaml\n  updaters: []\n";
        assert_eq!(fails(text).0, 6);
    }

    #[test]
    fn generators_and_commands_are_required() {
        let (line, message) = fails("version: 1\ncommandUpdated:\n  updaters: []\n");
        assert_eq!(line, 2, "at the `commandUpdated:` key");
        assert!(message.contains("`commandUpdated` needs at least one generator"), "{message}");
        assert!(fails("version: 1\npatchUpdated:\n  patchFile: p.yaml\n").1.contains("at least one generator"));
        assert!(fails("version: 1\ncommandUpdated:\n").1.contains("at least one generator"));
        let (line, message) = fails("version: 1\ncommandUpdated:\n  generators:\n    - command: ''\n");
        assert_eq!((line, message.as_str()), (4, "`command` is empty"));
        let text = "version: 1\ncommandUpdated:\n  generators:\n    - command: a\n  updaters:\n    - {}\n";
        let (line, message) = fails(text);
        assert_eq!(line, 6);
        assert!(message.contains("needs `containerImage` or `policy`"), "{message}");
    }

    #[test]
    fn patch_file_stays_inside() {
        let text = |p: &str| format!("version: 1\npatchUpdated:\n  generators:\n    - command: a\n  patchFile: {p}\n");
        for bad in ["/etc/passwd", "../up.yaml", "a/../../up.yaml", "'a\\b.yaml'", "./", "''"] {
            let (line, message) = fails(&text(bad));
            assert_eq!(line, 5, "{bad}: {message}");
            assert!(message.starts_with("`patchFile`"), "{bad}: {message}");
        }
        let (line, message) = fails("version: 1\npatchUpdated:\n  generators:\n    - command: a\n");
        assert_eq!((line, message.as_str()), (2, "`patchUpdated` needs a `patchFile`"));
    }

    #[test]
    fn invalid_yaml_and_empty_files() {
        let (line, message) = fails("version: 1\ncommandUpdated:\n  generators: [\n");
        assert!(line >= 3, "{line}: {message}");
        assert!(message.starts_with("invalid .flux.yaml"), "{message}");
        assert!(fails("").1.contains("empty"));
        assert!(fails("# only a comment\n").1.contains("empty"));
        assert!(fails("- a\n- b\n").1.starts_with("invalid .flux.yaml"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_flux_yaml_shaped_text(
            lines in proptest::collection::vec(
                proptest::sample::select(vec![
                    "version: 1", "version: x", "commandUpdated:", "patchUpdated:", "scanForFiles:",
                    "  generators:", "    - command: a", "    - command:", "  updaters:", "    - policy:",
                    "        command: b", "  patchFile: ../p", "  patchFile: p", "- [", "  - {}", "&a x: *a",
                ]),
                0..12,
            )
        ) {
            let _ = parse(&lines.join("\n"));
        }
    }
}
