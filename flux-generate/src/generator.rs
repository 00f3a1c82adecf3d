//! [`RepoGenerator`]: plain manifests, Kustomize apps and `.flux.yaml` paths, as one generator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flux_core::generate::{
    Generated, Generator, ManifestGenerator, Snapshot, Updated, WorkloadEdit, update_manifest_files,
};
use flux_core::manifest::{ManifestOptions, Skipped, read_manifests, workloads_of_objects};
use flux_core::source::{FileChange, Revision, SourceFile, path_is_under};
use flux_core::{Error, KubeObject, Location, ResourceId, Result};

use crate::checkout::Checkout;
use crate::command::{CommandRunner, ShellCommand};
use crate::flux_yaml::{ConfigCommand, FluxYamlConfig};
use crate::git_secret::{GitSecret, overlay};
use crate::kustomize::Kustomize;
use crate::layout::{FluxYamlUnit, KustomizeRoot, Layout, app_directories, join, kustomizations, layout};
use crate::sops::{Sops, is_sops_file};
use crate::{command_updated, kustomize_edit, patch_updated};

/// How a [`RepoGenerator`] makes objects.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// How plain manifests (and generated output) are read.
    pub manifest_options: ManifestOptions,
    /// Run `.flux.yaml` files (Flux v1's `--manifest-generation`). Off: they are ignored, and
    /// the paths are read for manifests and Kustomize apps.
    pub manifest_generation: bool,
    /// The program (and arguments) that builds a Kustomize app, the directory appended:
    /// by default `kustomize build` when `kustomize` is on the `PATH`, else `kubectl kustomize`.
    pub kustomize_command: Option<Vec<String>>,
    /// How long one command (a kustomize build, a generator, an updater) may run (one minute,
    /// as Flux v1's `--sync-timeout`). Past it, the command and its children are killed and the
    /// revision is unusable.
    pub timeout: Duration,
    /// Runs the commands.
    pub runner: CommandRunner,
    /// Decrypt SOPS-encrypted plain manifests (Flux v1's `--sops`) this way; `None` (the
    /// default): a plain manifest with a top-level `sops:` block is an error, never applied as
    /// ciphertext. Kustomize apps and `.flux.yaml` output are not decrypted (as in Flux v1);
    /// an object with SOPS metadata among their output is an error.
    pub sops: Option<Sops>,
    /// Reveal files hidden with git-secret (Flux v1's `--git-secret`) this way, and read them
    /// as if they were in the revision; `None` (the default): `*.secret` files are not read.
    /// A reveal that fails makes the revision unusable. Edits never go into a revealed file.
    pub git_secret: Option<GitSecret>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            manifest_options: ManifestOptions::default(),
            manifest_generation: false,
            kustomize_command: None,
            timeout: Duration::from_secs(60),
            runner: CommandRunner::default(),
            sops: None,
            git_secret: None,
        }
    }
}

/// Where a generated object came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Plain,
    Kustomize(usize),
    FluxYaml(usize),
}

/// What one generation found, kept to write edits back into the right files.
#[derive(Debug)]
struct Provenance {
    /// What was generated from (revisions are immutable, so this names the result).
    revision: Revision,
    paths: Vec<String>,
    /// The objects made.
    objects: Vec<KubeObject>,
    layout: Layout,
    units: BTreeMap<ResourceId, Unit>,
    /// The objects of each `patchUpdated` path before its patch file was applied.
    unpatched: BTreeMap<usize, Vec<KubeObject>>,
    /// What was not read as objects.
    skipped: Vec<Skipped>,
    /// The plain files that were SOPS-encrypted: never edited.
    encrypted: BTreeSet<String>,
    /// The files git-secret revealed (not in git): never edited.
    revealed: BTreeSet<String>,
}

/// The generator for a repository as Flux v1 (and Flux v2's kustomize support) understood it:
/// plain manifests, Kustomize apps built with `kustomize`, and, with manifest generation on,
/// paths governed by a `.flux.yaml` (`commandUpdated`, `patchUpdated`, `scanForFiles`).
/// Among plain files, what is not Kubernetes objects (hidden directories, Helm charts,
/// documents with neither `apiVersion` nor `kind`) is skipped and listed in
/// [`Generated::skipped`], as Flux v1 skipped it; a Helm chart inside a Kustomize app is the app's.
///
/// Edits go where each workload came from: a plain manifest is edited in place; a Kustomize
/// app's image is set in the app's own `images:` entry for it (else in the Flux v2
/// `$imagepolicy` markers for the workload in the app's files, else in a new entry of the
/// app's kustomization: a shared base is never edited for one app), and its policies in the
/// app's own patch for it (`flux-patches/<kind>-<name>.yaml`, applied by a `patches:` entry
/// the app's kustomization gets on first use); a `commandUpdated` path
/// runs its updaters; a `patchUpdated` path writes its patch file.
///
/// Every failure is an error of the revision (never fewer objects): a command that fails, runs
/// past the timeout, or prints no object; a kustomization that does not build.
pub struct RepoGenerator {
    config: GenerateConfig,
    plain: ManifestGenerator,
    kustomize: Kustomize,
    last: Mutex<Option<Arc<Provenance>>>,
}

impl std::fmt::Debug for RepoGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoGenerator").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Options to read generated output: larger files than hand-written ones.
fn output_options(options: &ManifestOptions) -> ManifestOptions {
    ManifestOptions { max_file_bytes: options.max_file_bytes.max(64 << 20), ..options.clone() }
}

impl RepoGenerator {
    /// A generator with this configuration.
    pub fn new(config: GenerateConfig) -> Self {
        let plain = ManifestGenerator::new(config.manifest_options.clone());
        let kustomize = match &config.kustomize_command {
            Some(command) => Kustomize::with_command(command.clone()).with_runner(config.runner.clone()),
            None => Kustomize::detect_with(config.runner.clone()),
        }
        .with_timeout(config.timeout);
        RepoGenerator { config, plain, kustomize, last: Mutex::new(None) }
    }

    /// Runs the commands.
    pub(crate) fn runner(&self) -> &CommandRunner {
        &self.config.runner
    }

    /// A command of a `.flux.yaml`, run in `dir` with `env` and the configured timeout.
    pub(crate) fn command(
        &self,
        command: &str,
        dir: PathBuf,
        origin: Location,
        env: Vec<(String, String)>,
    ) -> ShellCommand {
        ShellCommand { command: command.to_owned(), dir, env, timeout: self.config.timeout, origin }
    }

    /// Reads a command's or kustomize's output as objects from `origin`; printing none is an error.
    fn objects_of(&self, output: &str, origin: &str, what: &str) -> Result<Vec<KubeObject>> {
        // Read under a name the reader takes for YAML whatever the origin is called (`Kustomization`).
        let file = SourceFile { path: "output.yaml".to_owned(), content: output.as_bytes().to_vec() };
        let manifests = read_manifests(std::slice::from_ref(&file), &output_options(&self.config.manifest_options))
            .map_err(|errors| {
                let first = match errors.errors().first() {
                    Some(Error::InvalidInput { location, message }) => match location.line {
                        Some(line) => format!("line {line} of the output: {message}"),
                        None => message.clone(),
                    },
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let count = errors.len();
                Error::invalid(
                    Location::file(origin),
                    format!("the output of {what} is not valid manifests ({count} error(s)): {first}"),
                )
            })?;
        if manifests.is_empty() {
            return Err(Error::invalid(
                Location::file(origin),
                format!("{what} printed no objects; refusing to treat that as \"delete everything\""),
            ));
        }
        if let Some(m) = manifests.iter().find(|m| m.object.body().contains_key("sops")) {
            return Err(Error::invalid(
                Location::file(origin),
                format!(
                    "{what} printed {} with SOPS metadata (a top-level sops: block): SOPS files are decrypted \
                     only as plain manifests, not inside Kustomize apps or .flux.yaml output",
                    m.id()
                ),
            ));
        }
        Ok(manifests.into_iter().map(|m| m.object.with_origin(Some(Location::file(origin)))).collect())
    }

    async fn build_kustomization(&self, checkout: &Checkout, root: &KustomizeRoot) -> Result<Vec<KubeObject>> {
        let output = self.kustomize.build(checkout.path(), &root.dir).await?;
        self.objects_of(&output, &root.file, &format!("the kustomize build of {}", display_dir(&root.dir)))
    }

    /// The files a checkout needs. Kustomize (with its default load restrictions) reads only
    /// below an app's directory and the directories of the kustomizations it uses, so for
    /// Kustomize apps alone only those are written; `.flux.yaml` commands, or a custom kustomize
    /// command, may read anything: the whole revision.
    fn checkout_files(&self, layout: &Layout, all: &[SourceFile]) -> Vec<SourceFile> {
        if !layout.flux_yaml.is_empty() || self.config.kustomize_command.is_some() {
            return all.to_vec();
        }
        let (apps, _) = kustomizations(all);
        let needed = app_directories(&apps, layout.kustomize.iter().map(|root| root.dir.as_str()));
        all.iter().filter(|f| needed.iter().any(|dir| path_is_under(&f.path, dir))).cloned().collect()
    }

    /// Runs a `.flux.yaml` path's generators; for `patchUpdated`, returns the unpatched objects too.
    async fn run_generators(
        &self,
        snapshot: &Snapshot,
        checkout: &Checkout,
        unit: &FluxYamlUnit,
    ) -> Result<(Vec<KubeObject>, Option<Vec<KubeObject>>)> {
        let generators: &[ConfigCommand] = match &unit.config.config {
            FluxYamlConfig::CommandUpdated { generators, .. } | FluxYamlConfig::PatchUpdated { generators, .. } => {
                generators
            }
            FluxYamlConfig::ScanForFiles => &[],
        };
        let mut objects = Vec::new();
        for generator in generators {
            let origin = Location::line(&unit.config.file, generator.line);
            let command = self.command(&generator.command, checkout.path().join(&unit.target), origin, Vec::new());
            let output = self.config.runner.run(&command).await?.stdout;
            let what = format!("generator `{}` (from {}:{})", generator.command, unit.config.file, generator.line);
            objects.extend(self.objects_of(&output, &unit.config.file, &what)?);
        }
        let FluxYamlConfig::PatchUpdated { patch_file, .. } = &unit.config.config else {
            return Ok((objects, None));
        };
        let path = join(&unit.target, patch_file);
        let text = match snapshot.read_file(&path).await {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| Error::invalid(Location::file(&path), "not UTF-8"))?,
            Err(e) if e.is_not_found() => return Ok((objects.clone(), Some(objects))),
            Err(e) => return Err(e),
        };
        let patched = flux_core::manifest::patch::apply_patch_file(&path, &text, objects.clone())?;
        Ok((patched, Some(objects)))
    }

    /// Generates, and records where each object came from.
    async fn generate_with_provenance(&self, snapshot: &Snapshot) -> (Generated, Provenance) {
        let mut errors = Vec::new();
        let revealed = match &self.config.git_secret {
            Some(git_secret) => match git_secret.reveal(snapshot, &self.config.runner, self.config.timeout).await {
                Ok(files) => files,
                Err(e) => {
                    errors.push(e);
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let (layout, layout_errors) = layout(snapshot, &revealed, self.config.manifest_generation).await;
        errors.extend(layout_errors);
        let mut units = BTreeMap::new();
        let mut unpatched = BTreeMap::new();
        let (files, encrypted) = self.decrypt_plain(&layout.plain, &mut errors).await;
        let mut plain = self.plain.read(&files);
        relocate_decrypted(&mut plain, &encrypted);
        errors.extend(plain.errors);
        let mut skipped = layout.skipped.clone();
        skipped.extend(plain.skipped);
        skipped.sort();
        let mut objects = Vec::new();
        record(&mut units, &mut objects, Unit::Plain, plain.objects);
        if !layout.kustomize.is_empty() || !layout.flux_yaml.is_empty() {
            let files = snapshot.all_files().await;
            let files = files.map(|files| overlay(&files, &revealed));
            match files.and_then(|files| Checkout::new(&self.checkout_files(&layout, &files))) {
                Ok(checkout) => {
                    for (i, root) in layout.kustomize.iter().enumerate() {
                        match self.build_kustomization(&checkout, root).await {
                            Ok(built) => record(&mut units, &mut objects, Unit::Kustomize(i), built),
                            Err(e) => errors.push(e),
                        }
                    }
                    for (i, unit) in layout.flux_yaml.iter().enumerate() {
                        match self.run_generators(snapshot, &checkout, unit).await {
                            Ok((made, before_patch)) => {
                                record(&mut units, &mut objects, Unit::FluxYaml(i), made);
                                unpatched.extend(before_patch.map(|before| (i, before)));
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let provenance = Provenance {
            revision: snapshot.revision().clone(),
            paths: snapshot.paths().to_vec(),
            objects: objects.clone(),
            layout,
            units,
            unpatched,
            skipped: skipped.clone(),
            encrypted,
            revealed: revealed.into_iter().map(|f| f.path).collect(),
        };
        (Generated { objects, errors, skipped }, provenance)
    }

    /// The plain files with SOPS files decrypted (with `sops` configured), and the paths of
    /// those. A SOPS file that cannot be decrypted, or any SOPS file without `sops`
    /// configured, is an error and left out: the revision is unusable.
    async fn decrypt_plain(
        &self,
        files: &[SourceFile],
        errors: &mut Vec<Error>,
    ) -> (Vec<SourceFile>, BTreeSet<String>) {
        let mut out = Vec::with_capacity(files.len());
        let mut encrypted = BTreeSet::new();
        for file in files {
            let Some(sops) = &self.config.sops else {
                if is_sops_file(&file.path, &file.content) {
                    errors.push(Error::invalid(
                        Location::file(&file.path),
                        "this file is SOPS-encrypted (it has a top-level sops: block) and SOPS decryption is \
                         off (fluxd --sops); refusing to apply ciphertext",
                    ));
                } else {
                    out.push(file.clone());
                }
                continue;
            };
            match sops.decrypt(&file.path, &file.content, self.config.timeout).await {
                Ok(None) => out.push(file.clone()),
                Ok(Some(plaintext)) => {
                    encrypted.insert(file.path.clone());
                    out.push(SourceFile { path: file.path.clone(), content: plaintext.into_bytes() });
                }
                Err(e) => {
                    encrypted.insert(file.path.clone());
                    errors.push(e);
                }
            }
        }
        (out, encrypted)
    }

    /// Where the objects of `snapshot` came from: from the last generation when it was this
    /// revision, else generated again.
    async fn provenance(&self, snapshot: &Snapshot) -> Result<Arc<Provenance>> {
        if let Some(provenance) = self.cached(snapshot) {
            return Ok(provenance);
        }
        let (generated, provenance) = self.generate_with_provenance(snapshot).await;
        if let Some(first) = generated.errors.into_iter().next() {
            return Err(first);
        }
        Ok(Arc::new(provenance))
    }

    /// The last usable generation, when it was of this revision and these paths.
    fn cached(&self, snapshot: &Snapshot) -> Option<Arc<Provenance>> {
        let last = lock(&self.last);
        let provenance = last.as_ref()?;
        (&provenance.revision == snapshot.revision() && provenance.paths == snapshot.paths())
            .then(|| provenance.clone())
    }
}

/// Objects read from decrypted files name the file only (lines of the plaintext are no lines
/// of the file), and so do errors about them.
fn relocate_decrypted(generated: &mut Generated, encrypted: &BTreeSet<String>) {
    if encrypted.is_empty() {
        return;
    }
    for object in &mut generated.objects {
        if let Some(file) = object.origin().map(|o| o.file.clone()).filter(|f| encrypted.contains(f)) {
            *object = object.clone().with_origin(Some(Location::file(file)));
        }
    }
    for error in &mut generated.errors {
        if let Error::InvalidInput { location, message } = error
            && encrypted.contains(&location.file)
        {
            *location = Location::file(location.file.clone());
            if !message.starts_with("(decrypted) ") {
                *message = format!("(decrypted) {message}");
            }
        }
    }
}

/// The SOPS-encrypted file the edited workload was read from, if it was.
fn encrypted_origin<'a>(provenance: &'a Provenance, objects: &[KubeObject], edit: &WorkloadEdit) -> Option<&'a str> {
    let object = objects.iter().find(|o| o.id() == &edit.workload)?;
    let file = &object.origin()?.file;
    provenance.encrypted.get(file).map(String::as_str)
}

fn refuse_encrypted(file: &str, edit: &WorkloadEdit) -> Error {
    Error::invalid(
        Location::file(file),
        format!(
            "{} is defined in this SOPS-encrypted file; flux-rs never writes into encrypted files \
             (the edit would break its MAC or put plaintext into git): change it with sops",
            edit.workload
        ),
    )
}

/// The file revealed by git-secret the edited workload was read from, if it was.
fn revealed_origin<'a>(provenance: &'a Provenance, objects: &[KubeObject], edit: &WorkloadEdit) -> Option<&'a str> {
    let object = objects.iter().find(|o| o.id() == &edit.workload)?;
    provenance.revealed.get(&object.origin()?.file).map(String::as_str)
}

fn refuse_revealed(file: &str, edit: &WorkloadEdit) -> Error {
    Error::invalid(
        Location::file(file),
        format!(
            "{} is defined in this file revealed by git-secret; it is not in git (only {file}{} is), so \
             flux-rs cannot edit it: change it, then git secret hide and commit",
            edit.workload,
            crate::git_secret::SECRETS_EXTENSION
        ),
    )
}

/// Adds what `unit` made to `objects`, remembering where each came from.
fn record(units: &mut BTreeMap<ResourceId, Unit>, objects: &mut Vec<KubeObject>, unit: Unit, made: Vec<KubeObject>) {
    units.extend(made.iter().map(|o| (o.id().clone(), unit)));
    objects.extend(made);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn display_dir(dir: &str) -> &str {
    if dir.is_empty() { "the repository root" } else { dir }
}

#[async_trait]
impl Generator for RepoGenerator {
    /// Generates the snapshot, or returns the last usable result when it was of the same
    /// revision and paths: listing workloads, automation passes and syncs of an unchanged head
    /// build and run nothing again.
    async fn generate(&self, snapshot: &Snapshot) -> Generated {
        if let Some(provenance) = self.cached(snapshot) {
            return Generated {
                objects: provenance.objects.clone(),
                errors: Vec::new(),
                skipped: provenance.skipped.clone(),
            };
        }
        let (generated, provenance) = self.generate_with_provenance(snapshot).await;
        if generated.is_usable() {
            *lock(&self.last) = Some(Arc::new(provenance));
        }
        generated
    }

    async fn update(&self, snapshot: &Snapshot, generated: &Generated, edits: &[WorkloadEdit]) -> Updated {
        let provenance = match self.provenance(snapshot).await {
            Ok(p) => p,
            Err(e) => {
                let reason = e.to_string();
                let failed = (0..edits.len()).map(|i| (i, Error::other(reason.clone()))).collect();
                return Updated { files: Vec::new(), failed };
            }
        };
        // Plain files (`None`) and `.flux.yaml` paths (`Some(index)`); Kustomize apps together.
        let mut by_unit: BTreeMap<Option<usize>, Vec<(usize, &WorkloadEdit)>> = BTreeMap::new();
        let mut kustomize_edits = Vec::new();
        let mut updated = Updated::default();
        for (i, edit) in edits.iter().enumerate() {
            match provenance.units.get(&edit.workload) {
                Some(Unit::Kustomize(app)) => kustomize_edits.push((i, edit, &provenance.layout.kustomize[*app])),
                Some(Unit::Plain) => match encrypted_origin(&provenance, &generated.objects, edit) {
                    Some(file) => updated.failed.push((i, refuse_encrypted(file, edit))),
                    None => match revealed_origin(&provenance, &generated.objects, edit) {
                        Some(file) => updated.failed.push((i, refuse_revealed(file, edit))),
                        None => by_unit.entry(None).or_default().push((i, edit)),
                    },
                },
                Some(Unit::FluxYaml(path)) => by_unit.entry(Some(*path)).or_default().push((i, edit)),
                None => updated.failed.push((i, Error::not_found(format!("workload {}", edit.workload)))),
            }
        }
        if !kustomize_edits.is_empty() {
            // Together: apps may share the files written (a base's markers).
            let part = kustomize_edit::update(snapshot, &generated.objects, &kustomize_edits).await;
            merge(&mut updated, part, kustomize_edits.iter().map(|(i, _, _)| *i));
        }
        for (unit, edits) in by_unit {
            let indices: Vec<usize> = edits.iter().map(|(i, _)| *i).collect();
            let part = match unit {
                None => update_manifest_files(snapshot, &generated.objects, edits),
                Some(i) => {
                    let unit = &provenance.layout.flux_yaml[i];
                    match &unit.config.config {
                        FluxYamlConfig::CommandUpdated { updaters, .. } => {
                            command_updated::update(self, snapshot, unit, updaters, &edits).await
                        }
                        FluxYamlConfig::PatchUpdated { patch_file, .. } => {
                            let before = provenance.unpatched.get(&i).map(Vec::as_slice).unwrap_or_default();
                            let path = join(&unit.target, patch_file);
                            patch_updated::update(snapshot, &path, before, &generated.objects, &edits).await
                        }
                        FluxYamlConfig::ScanForFiles => update_manifest_files(snapshot, &generated.objects, edits),
                    }
                }
            };
            merge(&mut updated, part, indices);
        }
        updated.failed.sort_by_key(|(i, _)| *i);
        updated
    }
}

/// Adds `part` to `into`. Parts come from different apps and paths; should two write the same
/// file, the second part's edits fail rather than overwrite the first's.
fn merge(into: &mut Updated, part: Updated, indices: impl IntoIterator<Item = usize>) {
    if let Some(clash) = part.files.iter().find(|c| into.files.iter().any(|f: &FileChange| f.path == c.path)) {
        let reason =
            format!("{} is also changed by other edits of this commit; make these changes separately", clash.path);
        // The part's files go together: every edit of it that did not fail already fails now.
        let done: Vec<usize> = indices.into_iter().filter(|i| !part.failed.iter().any(|(f, _)| f == i)).collect();
        into.failed.extend(part.failed);
        into.failed.extend(done.into_iter().map(|i| (i, Error::other(reason.clone()))));
        return;
    }
    into.files.extend(part.files);
    into.failed.extend(part.failed);
}

/// The workloads among `objects`, to know where a container's image lives.
pub(crate) fn workloads_of(objects: &[KubeObject]) -> Vec<flux_core::manifest::WorkloadManifest> {
    workloads_of_objects(objects)
}
