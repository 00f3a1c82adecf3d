//! The persistent cache: one redb file on local disk holding, per repository, its tag list and
//! the digest each tag last resolved to, and per digest the (immutable) metadata of that
//! manifest. A file that cannot be opened or is of another version is discarded, never fatal.
//!
//! Every entry belongs to the credentials it was fetched with: entries got with the handle's own
//! credentials have plain keys, those got through a view with pull secrets keys prefixed by the
//! credential's salted [identity](crate::credentials::identity), so one workload's private tags
//! or manifests are never served to another that lacks its credentials.

use std::path::{Path, PathBuf};

use flux_core::{Error, ImageRepo, Platform};
use jiff::Timestamp;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bumped whenever the stored shapes change: an older file is discarded.
const FORMAT: &str = "flux-registry-cache-v3";
const FILE_NAME: &str = "registry-cache.redb";

const INFO: TableDefinition<&str, &str> = TableDefinition::new("info");
const TAG_LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tag_lists");
const TAG_DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tag_digests");
const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");

/// What a manifest says, stored by its digest (content-addressed, so never stale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Manifest {
    /// A single-platform image: its config's `created` time, and the time its labels say
    /// (`org.opencontainers.image.created`, else `org.label-schema.build-date`).
    Image {
        created: Option<Timestamp>,
        #[serde(default)]
        labelled: Option<Timestamp>,
    },
    /// An index: its entries' platforms and digests, in the index's order.
    Index { entries: Vec<(Platform, String)> },
}

/// The digest a tag pointed at, and when that was last asked of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TagDigest {
    pub(crate) digest: String,
    pub(crate) checked: Timestamp,
}

/// A repository's last complete tag list, and since when the registry has listed exactly it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TagList {
    pub(crate) tags: Vec<String>,
    pub(crate) listed: Timestamp,
}

pub(crate) struct Cache {
    db: Database,
    path: PathBuf,
    /// Random, kept in the file: salts credential identities.
    salt: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("path", &self.path).finish_non_exhaustive()
    }
}

fn cache_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::other(format!("registry cache {}: {e}", path.display()))
}

impl Cache {
    /// Opens (or creates) the cache in `dir`, discarding a corrupt or outdated file.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, e))?;
        let path = dir.join(FILE_NAME);
        match Self::open_file(&path) {
            Ok(cache) => Ok(cache),
            Err(OpenError::InUse) => Err(cache_error(&path, "already open by another registry handle or process")),
            Err(OpenError::Unusable(why)) => {
                tracing::warn!(path = %path.display(), %why, "discarding the registry cache");
                std::fs::remove_file(&path).map_err(|e| cache_error(&path, e))?;
                Self::open_file(&path).map_err(|e| cache_error(&path, e))
            }
        }
    }

    /// A cache that lives as long as the handle (no cache directory configured).
    pub(crate) fn in_memory() -> Result<Self, Error> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| Error::other(format!("in-memory registry cache: {e}")))?;
        let mut cache = Cache { db, path: PathBuf::from("<memory>"), salt: String::new() };
        cache.salt = cache.init().map_err(|e| Error::other(format!("in-memory registry cache: {e}")))?;
        Ok(cache)
    }

    fn open_file(path: &Path) -> Result<Self, OpenError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse,
            other => OpenError::Unusable(other.to_string()),
        })?;
        let mut cache = Cache { db, path: path.to_owned(), salt: String::new() };
        let unusable = |e: redb::Error| OpenError::Unusable(e.to_string());
        let format = cache.read_raw(INFO, "format").map_err(unusable)?;
        match format {
            Some(f) if f == FORMAT => match cache.read_raw(INFO, "salt").map_err(unusable)? {
                Some(salt) => cache.salt = salt,
                None => return Err(OpenError::Unusable("no salt".into())),
            },
            Some(other) => return Err(OpenError::Unusable(format!("format {other:?}, expected {FORMAT:?}"))),
            None => cache.salt = cache.init().map_err(unusable)?,
        }
        Ok(cache)
    }

    /// Marks a new file with its format and a new salt and creates every table, so readers never
    /// meet a missing one. Returns the salt.
    fn init(&self) -> Result<String, redb::Error> {
        let salt = new_salt();
        let tx = self.db.begin_write()?;
        {
            let mut info = tx.open_table(INFO)?;
            info.insert("format", FORMAT)?;
            info.insert("salt", salt.as_str())?;
        }
        for table in [TAG_LISTS, TAG_DIGESTS, MANIFESTS] {
            tx.open_table(table)?;
        }
        tx.commit()?;
        Ok(salt)
    }

    /// The salt of credential identities stored in this cache.
    pub(crate) fn salt(&self) -> &str {
        &self.salt
    }

    fn read_raw(&self, table: TableDefinition<&str, &str>, key: &str) -> Result<Option<String>, redb::Error> {
        let tx = self.db.begin_read()?;
        let table = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(key)?.map(|v| v.value().to_owned()))
    }

    /// A stored value; anything unreadable counts as absent (and is logged).
    fn get<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Option<T> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(table)?;
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        };
        match read() {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), key, error = %e, "ignoring an unreadable cache entry");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), key, error = %e, "registry cache read failed");
                None
            }
        }
    }

    /// Stores values; a failure is logged, not returned (the cache only saves requests).
    /// `durable` commits reach the disk before returning, and take earlier ones with them.
    fn put<T: Serialize>(&self, table: TableDefinition<&str, &[u8]>, entries: &[(&str, &T)], durable: bool) {
        let write = || -> Result<(), redb::Error> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
            {
                let mut t = tx.open_table(table)?;
                for (key, value) in entries {
                    let bytes = serde_json::to_vec(value).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                    t.insert(*key, bytes.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), error = %e, "registry cache write failed");
        }
    }

    pub(crate) fn tag_list(&self, who: &str, repo: &ImageRepo) -> Option<TagList> {
        self.get(TAG_LISTS, &scoped(who, &repo.to_string()))
    }

    /// Stores a repository's complete tag list durably, and forgets the digests of tags gone.
    /// An unchanged list is not written again (a warm rescan then writes nothing).
    pub(crate) fn put_tag_list(&self, who: &str, repo: &ImageRepo, list: &TagList) {
        let old = self.tag_list(who, repo);
        if old.as_ref().is_some_and(|old| old.tags == list.tags) {
            return;
        }
        if let Some(old) = old {
            let gone: Vec<String> = old
                .tags
                .iter()
                .filter(|t| list.tags.binary_search(t).is_err())
                .map(|t| tag_key(who, repo, t))
                .collect();
            if !gone.is_empty() {
                let remove = || -> Result<(), redb::Error> {
                    let tx = self.db.begin_write()?;
                    {
                        let mut t = tx.open_table(TAG_DIGESTS)?;
                        for key in &gone {
                            t.remove(key.as_str())?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                };
                if let Err(e) = remove() {
                    tracing::warn!(path = %self.path.display(), error = %e, "registry cache write failed");
                }
            }
        }
        self.put(TAG_LISTS, &[(&scoped(who, &repo.to_string()), list)], true);
    }

    pub(crate) fn tag_digest(&self, who: &str, repo: &ImageRepo, tag: &str) -> Option<TagDigest> {
        self.get(TAG_DIGESTS, &tag_key(who, repo, tag))
    }

    pub(crate) fn put_tag_digest(&self, who: &str, repo: &ImageRepo, tag: &str, value: &TagDigest) {
        self.put(TAG_DIGESTS, &[(&tag_key(who, repo, tag), value)], false);
    }

    pub(crate) fn manifest(&self, who: &str, digest: &str) -> Option<Manifest> {
        self.get(MANIFESTS, &scoped(who, digest))
    }

    pub(crate) fn put_manifest(&self, who: &str, digest: &str, manifest: &Manifest) {
        self.put(MANIFESTS, &[(&scoped(who, digest), manifest)], false);
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Make the last non-durable writes durable: an empty durable commit carries them.
        let flush = || -> Result<(), redb::Error> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "registry cache flush failed");
        }
    }
}

fn tag_key(who: &str, repo: &ImageRepo, tag: &str) -> String {
    scoped(who, &format!("{repo}:{tag}"))
}

/// `key` for entries fetched as `who` (a credential identity; empty for the handle's own
/// credentials). The space cannot occur in a repository, tag or digest, so keys never collide.
fn scoped(who: &str, key: &str) -> String {
    if who.is_empty() { key.to_owned() } else { format!("{who} {key}") }
}

/// 128 random bits, hex.
fn new_salt() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Two sources, either enough on its own: std's per-process random keys and fastrand's seed.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(fastrand::u64(..));
    format!("{:016x}{:016x}", hasher.finish(), fastrand::u64(..))
}

#[derive(Debug)]
enum OpenError {
    InUse,
    Unusable(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::InUse => f.write_str("in use"),
            OpenError::Unusable(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> ImageRepo {
        "127.0.0.1:5000/team/app".parse().unwrap()
    }

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        {
            let cache = Cache::open(dir.path()).unwrap();
            cache.put_manifest("", &digest, &Manifest::Image { created: Some(Timestamp::UNIX_EPOCH), labelled: None });
            cache.put_tag_digest(
                "",
                &repo(),
                "1.0",
                &TagDigest { digest: digest.clone(), checked: Timestamp::UNIX_EPOCH },
            );
            cache.put_tag_list("", &repo(), &TagList { tags: vec!["1.0".into()], listed: Timestamp::UNIX_EPOCH });
        }
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(
            cache.manifest("", &digest),
            Some(Manifest::Image { created: Some(Timestamp::UNIX_EPOCH), labelled: None })
        );
        assert_eq!(cache.tag_digest("", &repo(), "1.0").map(|t| t.digest), Some(digest));
        assert_eq!(cache.tag_list("", &repo()).map(|l| l.tags), Some(vec!["1.0".to_owned()]));
    }

    #[test]
    fn a_second_handle_on_the_same_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Cache::open(dir.path()).unwrap();
        let err = Cache::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
    }

    #[test]
    fn tags_that_are_gone_lose_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let d = TagDigest { digest: format!("sha256:{}", "b".repeat(64)), checked: Timestamp::UNIX_EPOCH };
        cache.put_tag_list("", &repo(), &TagList { tags: vec!["a".into(), "b".into()], listed: Timestamp::UNIX_EPOCH });
        cache.put_tag_digest("", &repo(), "a", &d);
        cache.put_tag_digest("", &repo(), "b", &d);
        cache.put_tag_list("", &repo(), &TagList { tags: vec!["b".into()], listed: Timestamp::UNIX_EPOCH });
        assert_eq!(cache.tag_digest("", &repo(), "a"), None);
        assert_eq!(cache.tag_digest("", &repo(), "b"), Some(d));
    }

    #[test]
    fn entries_of_different_credentials_never_mix_and_the_salt_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let digest = format!("sha256:{}", "c".repeat(64));
        let salt = {
            let cache = Cache::open(dir.path()).unwrap();
            cache.put_tag_list(
                "secret-a",
                &repo(),
                &TagList { tags: vec!["private".into()], listed: Timestamp::UNIX_EPOCH },
            );
            cache.put_manifest("secret-a", &digest, &Manifest::Image { created: None, labelled: None });
            cache.put_tag_digest(
                "secret-a",
                &repo(),
                "private",
                &TagDigest { digest: digest.clone(), checked: Timestamp::UNIX_EPOCH },
            );
            assert_eq!(cache.tag_list("", &repo()), None);
            assert_eq!(cache.tag_list("secret-b", &repo()), None);
            assert_eq!(cache.manifest("", &digest), None);
            assert_eq!(cache.tag_digest("", &repo(), "private"), None);
            assert_eq!(cache.salt().len(), 32);
            cache.salt().to_owned()
        };
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.salt(), salt, "identities stay valid across restarts");
        assert_eq!(cache.tag_list("secret-a", &repo()).map(|l| l.tags), Some(vec!["private".to_owned()]));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Cache::open(other.path()).unwrap().salt(), salt);
    }

    #[test]
    fn corrupt_or_foreign_files_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"this is not a redb file, just garbage bytes").unwrap();
        let cache = Cache::open(dir.path()).expect("a corrupt file is replaced");
        assert_eq!(cache.tag_list("", &repo()), None);
        drop(cache);

        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(INFO).unwrap().insert("format", "flux-registry-cache-v0").unwrap();
        tx.commit().unwrap();
        drop(db);
        let cache = Cache::open(dir.path()).expect("an older format is replaced");
        assert_eq!(cache.read_raw(INFO, "format").unwrap().as_deref(), Some(FORMAT));
    }
}
