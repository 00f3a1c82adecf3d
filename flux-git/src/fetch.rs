//! Refresh: list the remote's branch and marker tag (one cheap request), and fetch only when
//! either moved. Runs gix's blocking client; callers put it on `spawn_blocking`.
//!
//! Every network read has a deadline, so a server that accepts and then says nothing releases
//! the thread: `git://` goes over our own socket with read and write timeouts, HTTP(S) over a
//! reqwest client with a request timeout, ssh with `ConnectTimeout` and keep-alives (see
//! [`ssh_command`](crate::remote::ssh_command)). The caller also stops waiting after the
//! timeout and raises `interrupt`, which ends a pack transfer that is slow rather than silent.

use std::net::{TcpStream, ToSocketAddrs};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use flux_core::{Error, Result};
use gix::ObjectId;
use gix::remote::Direction;
use gix::remote::fetch::Shallow;

use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::client::blocking_io::http;

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
    timeout: Duration,
    interrupt: &AtomicBool,
) -> Result<Tips> {
    // A socket read that gave up (`timeout` is set on the git daemon's socket) is the timeout,
    // said as such, whichever of it and the caller's own deadline came first.
    let fail = |what: &str, e: &(dyn std::error::Error + 'static)| {
        if gave_up_waiting(e) { crate::push::timed_out(what, timeout) } else { remote.fail(what, e) }
    };
    remote.begin();
    let what = format!("listing refs of {}", remote.url);
    let specs = [format!("+{}:{}", names.branch, names.tracking), format!("+{}:{}", names.tag, names.tag)];
    let gix_remote = repo
        .remote_at(remote.url.as_str())
        .and_then(|r| r.with_refspecs(specs.iter().map(String::as_str), Direction::Fetch))
        .map_err(|e| fail(&what, &e))?;
    let mut connection = match remote.scheme {
        gix::url::Scheme::Git => {
            let (url, version) = gix_remote.sanitized_url_and_version(Direction::Fetch).map_err(|e| fail(&what, &e))?;
            let transport: Box<dyn Transport + Send> =
                Box::new(git_daemon(&url, version, timeout).map_err(|e| fail(&what, &e))?);
            gix_remote.to_connection_with_transport(transport)
        }
        gix::url::Scheme::Http | gix::url::Scheme::Https => {
            let connection = gix_remote.connect(Direction::Fetch).map_err(|e| fail(&what, &e))?;
            connection.with_transport_options(http_options(repo, &remote.url, timeout).map_err(|e| fail(&what, &e))?)
        }
        _ => gix_remote.connect(Direction::Fetch).map_err(|e| fail(&what, &e))?,
    };
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
        .receive(gix::progress::Discard, interrupt)
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

/// Whether `error` was caused by a socket read or write that gave up after its timeout.
fn gave_up_waiting(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A connection to a git daemon whose socket gives up after `timeout` without progress.
fn git_daemon(
    url: &gix::Url,
    version: gix::protocol::transport::Protocol,
    timeout: Duration,
) -> std::io::Result<gix::protocol::transport::client::git::blocking_io::Connection<TcpStream, TcpStream>> {
    let host = url.host().ok_or_else(|| std::io::Error::other("the git:// URL has no host"))?;
    let port = url.port.unwrap_or(9418);
    let address = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
    let read = TcpStream::connect_timeout(&address, timeout)?;
    read.set_read_timeout(Some(timeout))?;
    read.set_write_timeout(Some(timeout))?;
    let write = read.try_clone()?;
    Ok(gix::protocol::transport::client::git::blocking_io::Connection::new(
        read,
        write,
        version,
        url.path.clone(),
        Some((host.to_owned(), url.port)),
        gix::protocol::transport::client::git::ConnectMode::Daemon,
        false,
    ))
}

/// The repository's HTTP transport options, with a client whose requests (connecting, and
/// reading the whole answer) end after `timeout`.
fn http_options(repo: &gix::Repository, url: &str, timeout: Duration) -> Result<Box<dyn std::any::Any>> {
    let configured =
        repo.transport_options(url, None).map_err(|e| Error::other(format!("configuring the HTTP transport: {e}")))?;
    let mut options =
        configured.and_then(|o| o.downcast::<http::Options>().ok()).map_or_else(http::Options::default, |o| *o);
    options.connect_timeout = Some(timeout);
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| Ok(builder.timeout(timeout).connect_timeout(timeout)))),
        configure_request: None,
    };
    options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Ok(Box::new(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as gix's transport errors wrap the socket's.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Transport handshake failed")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_socket_timeout_anywhere_in_the_chain_is_the_timeout() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(gave_up_waiting(&Wrapped(IoError::from(ErrorKind::WouldBlock))));
        assert!(gave_up_waiting(&IoError::from(ErrorKind::TimedOut)));
        assert!(!gave_up_waiting(&Wrapped(IoError::from(ErrorKind::ConnectionRefused))));
    }
}
