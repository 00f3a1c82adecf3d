//! The view of the API on disk, across restarts, as kubectl's discovery cache
//! (`~/.kube/cache/discovery`): one file per API server in
//! [`ClusterOptions::discovery_cache_dir`](crate::ClusterOptions::discovery_cache_dir), used
//! while younger than its TTL, replaced whenever the handle discovers again (an unknown kind,
//! an expired or unreadable file). Written atomically (a temporary file renamed over it); a
//! file that cannot be read or parsed is ignored and rewritten. It holds kinds and versions
//! only, nothing secret.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};

use crate::discovery::{Kind, Snapshot};

/// Bumped when the file's shape changes: an older file is ignored.
const FORMAT: u32 = 1;

/// Where one server's view is kept, and for how long it is trusted.
#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    path: PathBuf,
    server: String,
    ttl: Duration,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    server: String,
    /// Seconds since the Unix epoch.
    written: u64,
    legacy_only: bool,
    kinds: Vec<Entry>,
    listed: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    listable: bool,
}

impl Entry {
    fn of(kind: &Kind) -> Self {
        let r = &kind.resource;
        Entry {
            group: r.group.clone(),
            version: r.version.clone(),
            kind: r.kind.clone(),
            plural: r.plural.clone(),
            namespaced: kind.namespaced,
            listable: kind.listable,
        }
    }

    fn into_kind(self) -> Kind {
        let api_version =
            if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) };
        let resource =
            ApiResource { group: self.group, version: self.version, api_version, kind: self.kind, plural: self.plural };
        Kind { resource, namespaced: self.namespaced, listable: self.listable }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DiskCache {
    /// The cache of the server at `server` (its URL) in `dir`: `<dir>/<host_port>.json`, the
    /// host and port with anything but alphanumerics, `.` and `-` as `_`.
    pub(crate) fn new(dir: &Path, server: &str, ttl: Duration) -> Self {
        let host = server.split_once("://").map_or(server, |(_, rest)| rest).trim_end_matches('/');
        let name: String =
            host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        DiskCache { path: dir.join(format!("{name}.json")), server: server.to_owned(), ttl }
    }

    /// The view on disk, if there is one for this server younger than the TTL, and whether the
    /// server is known to lack aggregated discovery.
    pub(crate) fn load(&self) -> Option<(Snapshot, bool)> {
        let bytes = std::fs::read(&self.path).ok()?;
        let file: File = match serde_json::from_slice(&bytes) {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "unreadable discovery cache: ignored");
                return None;
            }
        };
        let age = now().checked_sub(file.written)?;
        if file.format != FORMAT || file.server != self.server || Duration::from_secs(age) >= self.ttl {
            return None;
        }
        let mut snapshot = Snapshot::default();
        for entry in file.kinds {
            let kind = entry.into_kind();
            let r = &kind.resource;
            snapshot.kinds.insert((r.group.clone(), r.version.clone(), r.kind.to_ascii_lowercase()), kind);
        }
        snapshot.listed = file.listed.into_iter().map(Entry::into_kind).collect();
        Some((snapshot, file.legacy_only))
    }

    /// Writes `snapshot` atomically; a failure is logged, never fatal (the cache is an
    /// optimisation).
    pub(crate) fn store(&self, snapshot: &Snapshot, legacy_only: bool) {
        let file = File {
            format: FORMAT,
            server: self.server.clone(),
            written: now(),
            legacy_only,
            kinds: snapshot.kinds.values().map(Entry::of).collect(),
            listed: snapshot.listed.iter().map(Entry::of).collect(),
        };
        if let Err(e) = self.write(&file) {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot write the discovery cache");
        }
    }

    fn write(&self, file: &File) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec(file).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
            std::process::id()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ignored = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let kind = Entry {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespaced: true,
            listable: true,
        }
        .into_kind();
        let mut snapshot = Snapshot::default();
        snapshot.kinds.insert(("apps".into(), "v1".into(), "deployment".into()), kind.clone());
        snapshot.listed.push(kind);
        snapshot
    }

    #[test]
    fn a_view_reads_back_until_it_expires() {
        let dir = std::env::temp_dir().join(format!("flux-k8s-discovery-{}", std::process::id()));
        let cache = DiskCache::new(&dir, "https://127.0.0.1:6443", Duration::from_secs(3600));
        assert!(cache.path.ends_with("127.0.0.1_6443.json"), "{}", cache.path.display());
        assert!(cache.load().is_none(), "nothing cached yet");
        cache.store(&snapshot(), true);
        let (loaded, legacy) = cache.load().expect("cached");
        assert!(legacy);
        assert_eq!(loaded.listed[0].resource.api_version, "apps/v1");
        assert!(loaded.kinds.contains_key(&("apps".into(), "v1".into(), "deployment".into())));

        let expired = DiskCache { ttl: Duration::ZERO, ..cache.clone() };
        assert!(expired.load().is_none(), "an expired view is not used");
        let other = DiskCache { server: "https://elsewhere:6443".into(), ..cache.clone() };
        assert!(other.load().is_none(), "another server's view is not used");

        std::fs::write(&cache.path, b"{not json").expect("corrupt it");
        assert!(cache.load().is_none(), "a corrupt file is ignored");
        cache.store(&snapshot(), false);
        assert!(cache.load().is_some_and(|(_, legacy)| !legacy), "and rewritten");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
