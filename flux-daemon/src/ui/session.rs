//! Sessions of the status page: the API token, checked once at `/ui/login`, is exchanged for a
//! random session id kept in an HttpOnly, SameSite=Strict cookie with an expiry. Each session
//! has its own CSRF token, put in every form and checked (in constant time) on every action.
//! Sessions live in memory only (a restart signs everyone out); the store keeps the SHA-256 of
//! each id, never the id itself, so a look-up's timing says nothing about valid ids.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "flux_ui_session";

/// How many sessions are kept at most; past it, the one expiring first is dropped.
const MAX_SESSIONS: usize = 1024;

/// A random token of 32 bytes, as 64 hex digits.
///
/// # Errors
/// When the operating system's random source fails.
pub(crate) fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A signed-in session.
#[derive(Clone)]
pub(crate) struct Session {
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    /// When it stops being accepted.
    pub(crate) expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("expires", &self.expires).finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The signed-in sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    lifetime: Duration,
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// An empty store whose sessions last `lifetime`.
    pub(crate) fn new(lifetime: Duration) -> Self {
        Sessions { lifetime, by_hash: Mutex::new(HashMap::new()) }
    }

    /// How long a session lasts.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session starting at `now`: its id (for the cookie) and the session.
    ///
    /// # Errors
    /// When the random source fails.
    pub(crate) fn create(&self, now: Instant) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session { csrf: random_token()?, expires: now + self.lifetime };
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(first) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            map.remove(&first);
        }
        map.insert(hash(&id), session.clone());
        Ok((id, session))
    }

    /// The session `id` names, if it exists and has not expired at `now` (an expired one is
    /// forgotten).
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = hash(id);
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&key) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (sign out).
    pub(crate) fn remove(&self, id: &str) {
        self.by_hash.lock().unwrap_or_else(PoisonError::into_inner).remove(&hash(id));
    }
}

/// The value of cookie `name` in a `Cookie` header, if there.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The `Set-Cookie` value of a session: HttpOnly, SameSite=Strict, on `/ui`, expiring with the
/// session; `Secure` when served over TLS.
pub(crate) fn set_cookie(id: &str, lifetime: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", lifetime.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let (id, session) = sessions.create(t0).expect("random");
        assert_eq!(id.len(), 64);
        assert!(sessions.get(&id, t0 + Duration::from_secs(59)).is_some(), "valid before its expiry");
        assert!(sessions.get(&id, t0 + Duration::from_secs(60)).is_none(), "refused at its expiry");
        assert!(sessions.get(&id, t0).is_none(), "an expired session is forgotten, not revived");
        assert!(sessions.get("not-a-session", t0).is_none());
        assert!(!format!("{session:?}").contains(&session.csrf), "Debug hides the CSRF token");
        let (other, _) = sessions.create(t0).expect("random");
        sessions.remove(&other);
        assert!(sessions.get(&other, t0).is_none(), "signed out");
    }

    #[test]
    fn csrf_tokens_are_per_session_and_compared_exactly() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let (_, a) = sessions.create(now).expect("random");
        let (_, b) = sessions.create(now).expect("random");
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf));
        assert!(!a.csrf_matches(&b.csrf), "another session's token");
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_matches(&a.csrf[..63]));
    }

    #[test]
    fn the_store_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let first = sessions.create(now).expect("random").0;
        for i in 0..MAX_SESSIONS {
            sessions.create(now + Duration::from_millis(i as u64 + 1)).expect("random");
        }
        assert!(sessions.get(&first, now).is_none(), "the one expiring first was dropped");
        assert!(sessions.by_hash.lock().expect("lock").len() <= MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_http_only_strict_and_expire() {
        let value = set_cookie("abc", Duration::from_secs(3600), false);
        assert_eq!(value, "flux_ui_session=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=3600");
        assert!(set_cookie("abc", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert_eq!(cookie("a=1; flux_ui_session=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("flux_ui_session_x=1", COOKIE), None);
    }
}
