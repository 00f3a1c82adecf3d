//! Refresh: list the remote's branch and marker tag (one cheap request), and fetch only when
//! either moved. Runs gix's blocking client; callers put it on `spawn_blocking`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flux_core::{Error, Result};
use gix::ObjectId;
use gix::remote::Direction;
use gix::remote::fetch::Shallow;

use crate::mirror::{delete_ref, read_ref, write_ref};
use crate::remote::Remote;

/// The full ref names this source follows, remote and local.
#[derive(Debug, Clone)]
pub(crate) struct RefNames {
    /// `refs/heads/<branch>` on the remote.
    pub(crate) branch: String,
    /// Where the mirror keeps the fetched branch head.
    pub(crate) tracking: String,
    /// `refs/tags/<sync tag>`, the same name on both sides.
    pub(crate) tag: String,
}

impl RefNames {
    /// Checks that `branch` and `tag` make valid ref names.
    pub(crate) fn new(branch: &str, tag: &str) -> Result<Self> {
        let valid = |name: String, what: &str| {
            gix::refs::FullName::try_from(name.as_str()).map(|_| name.clone()).map_err(|_| {
                Error::invalid(flux_core::Location::file(what), format!("{name:?} is not a valid ref name"))
            })
        };
        Ok(RefNames {
            branch: valid(format!("refs/heads/{branch}"), "git branch")?,
            tracking: valid(format!("refs/remotes/origin/{branch}"), "git branch")?,
            tag: valid(format!("refs/tags/{tag}"), "sync tag")?,
        })
    }
}

/// What the remote's branch and tag point to, as of the last refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tips {
    pub(crate) head: ObjectId,
    pub(crate) marker: Option<ObjectId>,
}

/// How much network work refreshes have done, for callers that watch costs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) ref_listings: AtomicU64,
    pub(crate) pack_fetches: AtomicU64,
}

/// Brings the mirror's tracking ref and tag up to date with the remote and returns them.
pub(crate) fn refresh(
    repo: &gix::Repository,
    remote: &Remote,
    names: &RefNames,
    depth: Option<NonZeroU32>,
    counters: &Counters,
) -> Result<Tips> {
    let fail = |what: &str, e: &dyn std::fmt::Display| remote.fail(what, e);
    remote.begin();
    let what = format!("listing refs of {}", remote.url);
    let specs = [format!("+{}:{}", names.branch, names.tracking), format!("+{}:{}", names.tag, names.tag)];
    let gix_remote = repo
        .remote_at(remote.url.as_str())
        .and_then(|r| r.with_refspecs(specs.iter().map(String::as_str), Direction::Fetch))
        .map_err(|e| fail(&what, &e))?;
    let mut connection = gix_remote.connect(Direction::Fetch).map_err(|e| fail(&what, &e))?;
    if let Some((username, password)) = remote.credentials.http_account() {
        connection.set_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(context) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: username.clone(),
                    password: password.clone(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            })),
            _ => Ok(None),
        });
    }
    counters.ref_listings.fetch_add(1, Ordering::Relaxed);
    let prepare = connection.prepare_fetch(gix::progress::Discard, Default::default()).map_err(|e| fail(&what, &e))?;
    let advertised = |name: &str| {
        prepare.ref_map().remote_refs.iter().find_map(|r| {
            let (ref_name, target, peeled) = r.unpack();
            (ref_name == name).then(|| peeled.or(target).map(ToOwned::to_owned)).flatten()
        })
    };
    let Some(remote_head) = advertised(&names.branch) else {
        return Err(Error::not_found(format!(
            "branch {} at {} (the remote has no such branch)",
            names.branch, remote.url
        )));
    };
    let remote_marker = advertised(&names.tag);
    let local = Tips {
        head: read_ref(repo, &names.tracking)?.unwrap_or(ObjectId::null(repo.object_hash())),
        marker: read_ref(repo, &names.tag)?,
    };
    let wanted = Tips { head: remote_head, marker: remote_marker };
    if local == wanted {
        tracing::debug!(url = %remote.url, head = %remote_head, "remote unchanged, nothing fetched");
        return Ok(wanted);
    }
    let first_fetch = local.head.is_null();
    let shallow = match depth {
        Some(depth) if first_fetch => Shallow::DepthAtRemote(depth),
        _ => Shallow::NoChange,
    };
    let outcome = prepare
        .with_shallow(shallow)
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| fail(&format!("fetching {} from {}", names.branch, remote.url), &e))?;
    let pack = matches!(outcome.status, gix::remote::fetch::Status::Change { .. });
    if pack {
        counters.pack_fetches.fetch_add(1, Ordering::Relaxed);
    }
    tracing::debug!(url = %remote.url, head = %remote_head, pack, "fetched");
    // gix leaves refs that vanished remotely alone; a deleted marker must vanish here too.
    match remote_marker {
        Some(id) => write_ref(repo, &names.tag, id)?,
        None => delete_ref(repo, &names.tag)?,
    }
    write_ref(repo, &names.tracking, remote_head)?;
    Ok(wanted)
}
