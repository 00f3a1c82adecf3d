//! `save`: the objects fluxd manages (its `GET /export`), as Flux v1's `fluxctl save` wrote them
//! to be committed: to stdout as one stream, or one file per object under a directory
//! (`<name>-ns.yaml` for a Namespace, `<namespace>/<name>-<kind>.yaml` for the others, `dep`
//! for a Deployment).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// Annotations the cluster or kubectl writes, never version-controlled (Flux v1's list), and
/// the marks a sync puts on what it applies (it puts them back; flux-core's
/// `CHECKSUM_ANNOTATION`, `SYNC_PATH_ANNOTATION`, `GC_MARK_LABEL`, `SYNC_UNIT_LABEL`).
const DROPPED_ANNOTATIONS: [&str; 5] = [
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubernetes.io/change-cause",
    "fluxcd.io/sync-checksum",
    "fluxcd.io/sync-path",
];
const DROPPED_LABELS: [&str; 2] = ["fluxcd.io/sync-gc-mark", "fluxcd.io/sync-unit"];

/// One object as saved: `apiVersion`, `kind`, the metadata that belongs in git (annotations,
/// labels, name, namespace), then every other top-level field but `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SavedObject {
    #[serde(rename = "apiVersion", skip_serializing_if = "String::is_empty")]
    api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    metadata: Metadata,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Metadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
}

/// The objects of an export stream, filtered for saving.
pub(crate) fn objects(export: &str) -> Result<Vec<SavedObject>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(export).map_err(|e| format!("fluxd's export is not YAML: {e}"))?;
    docs.into_iter().filter(|d| !d.is_null()).map(saved).collect()
}

fn saved(doc: Value) -> Result<SavedObject, String> {
    let Value::Object(mut fields) = doc else {
        return Err("fluxd's export holds a document that is not an object".into());
    };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let api_version = text(fields.remove("apiVersion"));
    let kind = text(fields.remove("kind"));
    let mut meta = match fields.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Default::default(),
    };
    let strings = |v: Option<Value>| -> BTreeMap<String, String> {
        let Some(Value::Object(m)) = v else { return BTreeMap::new() };
        m.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_owned()))).collect()
    };
    let mut annotations = strings(meta.remove("annotations"));
    DROPPED_ANNOTATIONS.iter().for_each(|a| {
        annotations.remove(*a);
    });
    let mut labels = strings(meta.remove("labels"));
    DROPPED_LABELS.iter().for_each(|l| {
        labels.remove(*l);
    });
    let metadata =
        Metadata { annotations, labels, name: text(meta.remove("name")), namespace: text(meta.remove("namespace")) };
    if metadata.name.is_empty() {
        return Err(format!("fluxd's export holds a {kind} without a name"));
    }
    fields.remove("status");
    if let Some(Value::Object(m)) = fields.get_mut("spec").and_then(|s| s.pointer_mut("/template/metadata")) {
        m.remove("creationTimestamp");
    }
    let mut rest: BTreeMap<String, Value> = fields.into_iter().collect();
    rest.values_mut().for_each(drop_empty);
    rest.retain(|_, v| !is_empty(v));
    Ok(SavedObject { api_version, kind, metadata, rest })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Removes the empty maps, lists and nulls under `v`, as Flux v1's `deleteEmptyMapValues`
/// (list items stay, emptied or not: their position means something).
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(drop_empty);
            m.retain(|_, v| !is_empty(v));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

impl SavedObject {
    /// Its YAML document (without the `---` line).
    pub(crate) fn yaml(&self) -> Result<String, String> {
        serde_saphyr::to_string(self)
            .map_err(|e| format!("cannot write {} {} as YAML: {e}", self.kind, self.metadata.name))
    }

    /// Its file under `dir`, as Flux v1 named it.
    pub(crate) fn path(&self, dir: &Path) -> Result<PathBuf, String> {
        let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']);
        let Metadata { name, namespace, .. } = &self.metadata;
        if !safe(name) || !(namespace.is_empty() || safe(namespace)) {
            return Err(format!("{} {name:?} in {namespace:?} cannot be a file name", self.kind));
        }
        Ok(if self.kind == "Namespace" {
            dir.join(format!("{name}-ns.yaml"))
        } else {
            let kind = if self.kind == "Deployment" { "dep" } else { &self.kind };
            dir.join(namespace).join(format!("{name}-{kind}.yaml"))
        })
    }
}

/// Writes `objects` to `stdout` as one stream (`out` is `-`), or each to its file under the
/// existing directory `out`, saying so on `stdout`. Two objects that would share a file are
/// refused before anything is written.
pub(crate) fn write(objects: &[SavedObject], out: &str, stdout: &mut impl Write) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write: {e}");
    if out == "-" {
        for object in objects {
            write!(stdout, "---\n{}", object.yaml()?).map_err(io)?;
        }
        return Ok(());
    }
    let dir = Path::new(out);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("path {out} is not a directory")),
        Err(e) => return Err(format!("{out}: {e}")),
    }
    let mut planned = BTreeSet::new();
    let mut files = Vec::new();
    for object in objects {
        let path = object.path(dir)?;
        if !planned.insert(path.clone()) {
            return Err(format!(
                "two objects would be saved to {}: {} {}",
                path.display(),
                object.kind,
                object.metadata.name
            ));
        }
        files.push((object, path, object.yaml()?));
    }
    for (object, path, yaml) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        writeln!(stdout, "Saving {} '{}' to {}", object.kind, object.metadata.name, path.display()).map_err(io)?;
        std::fs::write(&path, format!("---\n{yaml}")).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = "---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    fluxcd.io/sync-gc-mark: sha256.abc
    fluxcd.io/sync-unit: default
spec:
  finalizers: [kubernetes]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: demo
  annotations:
    deployment.kubernetes.io/revision: \"3\"
    fluxcd.io/automated: \"true\"
    fluxcd.io/sync-checksum: abc
  finalizers: []
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: app:1
        resources: {}
  strategy: {}
status:
  replicas: 1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: demo
data:
  colour: blue
";

    #[test]
    fn objects_keep_what_belongs_in_git() {
        let list = objects(EXPORT).expect("objects");
        assert_eq!(list.len(), 3);
        let deployment = list[1].yaml().expect("yaml");
        let expected = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  annotations:\n    fluxcd.io/automated: \"true\"\n  name: app\n  namespace: demo\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: app\n  template:\n    metadata:\n      labels:\n        app: app\n    spec:\n      containers:\n      - image: app:1\n        name: app\n";
        let reread: Value = serde_saphyr::from_str(&deployment).expect("yaml");
        let wanted: Value = serde_saphyr::from_str(expected).expect("yaml");
        assert_eq!(reread, wanted, "{deployment}");
        assert!(deployment.starts_with("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"), "{deployment}");
        // A ConfigMap keeps its data (Flux v1 kept only `spec`, losing it).
        assert!(list[2].yaml().expect("yaml").contains("colour: blue"));
        let namespace = list[0].yaml().expect("yaml");
        assert!(!namespace.contains("labels") && !namespace.contains("sync"), "{namespace}");
    }

    #[test]
    fn files_are_named_as_flux_v1_named_them() {
        let dir = tempfile::tempdir().expect("a directory");
        let list = objects(EXPORT).expect("objects");
        let mut said = Vec::new();
        write(&list, &dir.path().display().to_string(), &mut said).expect("written");
        for file in ["demo-ns.yaml", "demo/app-dep.yaml", "demo/config-ConfigMap.yaml"] {
            let text = std::fs::read_to_string(dir.path().join(file)).expect(file);
            assert!(text.starts_with("---\napiVersion: "), "{file}: {text}");
        }
        let said = String::from_utf8(said).expect("utf-8");
        let expected = format!("Saving Deployment 'app' to {}\n", dir.path().join("demo/app-dep.yaml").display());
        assert!(said.contains(&expected), "{said}");
        let file = dir.path().join("demo-ns.yaml");
        assert!(
            write(&list, &file.display().to_string(), &mut Vec::new()).expect_err("a file").contains("not a directory")
        );
    }

    #[test]
    fn colliding_or_unsafe_names_write_nothing() {
        let dir = tempfile::tempdir().expect("a directory");
        let twice =
            format!("{EXPORT}---\napiVersion: v2\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: demo\n");
        let list = objects(&twice).expect("objects");
        let error = write(&list, &dir.path().display().to_string(), &mut Vec::new()).expect_err("a collision");
        assert!(error.contains("two objects"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("the directory").count(), 0, "something was written");
        let bad = objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ..\n").expect("objects");
        assert!(bad[0].path(dir.path()).is_err());
    }
}
