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
/// [`Error::InvalidInput`] at `file` and the line at fault when the YAML is invalid, a key is
/// unknown, `version` is not 1, not exactly one of `commandUpdated`, `patchUpdated` and
/// `scanForFiles` is given, there are no generators, a command is empty, an updater has no
/// command, or `patchFile` is missing, absolute or leaves the directory.
pub fn parse_flux_yaml(file: &str, text: &str) -> Result<FluxYaml> {
    let at = |line: usize| Location::line(file, line);
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
    let given: Vec<(&str, usize)> = [
        ("commandUpdated", raw.command_updated.as_ref().map(line_of)),
        ("patchUpdated", raw.patch_updated.as_ref().map(line_of)),
        ("scanForFiles", raw.scan_for_files.as_ref().map(line_of)),
    ]
    .into_iter()
    .filter_map(|(key, line)| Some((key, line?)))
    .collect();
    let config = match (given.as_slice(), raw) {
        ([_], RawFile { command_updated: Some(section), .. }) => {
            let line = line_of(&section);
            let body = section.value.unwrap_or_default();
            FluxYamlConfig::CommandUpdated {
                generators: generators(file, line, "commandUpdated", body.generators)?,
                updaters: body.updaters.into_iter().map(|u| updater(file, u)).collect::<Result<_>>()?,
            }
        }
        ([_], RawFile { patch_updated: Some(section), .. }) => {
            let line = line_of(&section);
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

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

fn yaml_error(file: &str, error: &serde_saphyr::Error) -> Error {
    let line = error.location().map_or(1, |l| usize::try_from(l.line()).unwrap_or(1).max(1));
    let text = error.without_snippet().to_string();
    let message = text.lines().next().unwrap_or("invalid YAML").trim_start_matches("error: ").to_owned();
    Error::invalid(Location::line(file, line), format!("invalid .flux.yaml: {message}"))
}
