//! Console sessions: a random session id in an `HttpOnly` cookie, mapped in this process's memory
//! to the admin token it was opened with (never sent back to the browser) and a CSRF token.
//!
//! The map is keyed by the SHA-256 of the session id, so the ids themselves are not kept. A session
//! ends after [`SESSION_SECONDS`], at sign-out, or at the first request after its token was revoked
//! or expired (every request re-authenticates the token, see `super::Signed`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use steward_crypto::{hash_token, hashes_equal};
use steward_types::Timestamp;
use zeroize::Zeroizing;

/// How long a session lives at most (12 h).
pub const SESSION_SECONDS: i64 = 12 * 60 * 60;
/// Most sessions one instance keeps; the oldest is dropped to make room.
const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
pub const COOKIE: &str = "steward_console";

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    /// The admin token, kept only here (zeroed when the session is dropped).
    pub token: Zeroizing<String>,
    /// Sent with every state-changing request (form field `csrf` or header `x-csrf-token`).
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        match presented {
            Some(presented) if !presented.is_empty() => {
                hashes_equal(&hash_token(presented), &hash_token(&self.csrf))
            }
            _ => false,
        }
    }
}

/// The sessions of this instance.
#[derive(Debug, Default, Clone)]
pub struct Sessions(Arc<Mutex<HashMap<[u8; 32], Arc<Session>>>>);

/// 32 random bytes, base64url.
pub fn random_token() -> Result<String, aws_lc_rs::error::Unspecified> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Session>>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts/removes).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `token`; returns the session id for the cookie.
    pub fn open(&self, token: String, now: Timestamp) -> Result<String, aws_lc_rs::error::Unspecified> {
        let id = random_token()?;
        let session = Session {
            token: Zeroizing::new(token),
            csrf: random_token()?,
            created_at: now,
            expires_at: now.plus_seconds(SESSION_SECONDS),
        };
        let mut map = self.map();
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created_at).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(hash_token(&id), Arc::new(session));
        Ok(id)
    }

    /// The live session of a cookie value (an expired one is removed).
    pub fn get(&self, id: &str, now: Timestamp) -> Option<Arc<Session>> {
        let key = hash_token(id);
        let mut map = self.map();
        match map.get(&key) {
            Some(session) if session.expires_at > now => Some(Arc::clone(session)),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map().remove(&hash_token(id));
    }
}
