//! Small bounded in-process caches of the execute path (issue 8, `docs/performance.md`):
//!
//! - [`TemplateCache`]: compiled templates by (owner, id, version). Published versions are immutable,
//!   and the cached entry also keeps the stored body it was compiled from, so a body that differs
//!   (a version deleted and published again) is compiled afresh rather than served stale.
//! - [`ScrubberCache`]: built scrubbers (Aho-Corasick automata) keyed by an HMAC-SHA-256, under a
//!   random per-process key, of the needles. The needles themselves (the plaintext secret and the
//!   injected value) are never stored; the key covers integration, secret version and injection since
//!   it is derived from exactly the bytes they produce.
//!
//! Both are bounded: when full, an arbitrary entry is evicted before inserting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use steward_canon::Template;
use steward_egress::{EgressError, Scrubber};

/// Entries kept by each cache.
pub const CACHE_CAPACITY: usize = 1024;

/// Inserts `key`, first evicting an arbitrary other entry when `map` already holds `capacity`.
pub(crate) fn insert_bounded<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    key: K,
    value: V,
) {
    if map.len() >= capacity
        && !map.contains_key(&key)
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}

type TemplateKey = (String, String, u64);
/// The stored body a template was compiled from, and the compiled template.
type TemplateEntry = (Arc<str>, Arc<Template>);

/// Compiled templates by (owner, template id, version).
#[derive(Debug, Default)]
pub struct TemplateCache {
    entries: Mutex<HashMap<TemplateKey, TemplateEntry>>,
}

impl TemplateCache {
    /// The template compiled from `body`, from the cache when the same body was compiled before for
    /// (`owner`, `id`, `version`); `compile` runs otherwise (errors are not cached).
    pub fn get_or_compile<E>(
        &self,
        owner: &str,
        id: &str,
        version: u64,
        body: &str,
        compile: impl FnOnce() -> Result<Template, E>,
    ) -> Result<Arc<Template>, E> {
        let key = (owner.to_owned(), id.to_owned(), version);
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((cached_body, template)) = entries.get(&key)
                && **cached_body == *body
            {
                return Ok(Arc::clone(template));
            }
        }
        let template = Arc::new(compile()?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        insert_bounded(&mut entries, CACHE_CAPACITY, key, (Arc::from(body), Arc::clone(&template)));
        Ok(template)
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Built scrubbers keyed by a keyed hash of their needles.
pub struct ScrubberCache {
    key: hmac::Key,
    entries: Mutex<HashMap<[u8; 32], Arc<Scrubber>>>,
}

impl std::fmt::Debug for ScrubberCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrubberCache").field("entries", &self.len()).finish_non_exhaustive()
    }
}

impl Default for ScrubberCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ScrubberCache {
    /// An empty cache with a fresh random hashing key.
    pub fn new() -> Self {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        // A failing system RNG leaves the key all-zero: still a correct (if unsalted) cache key.
        let _ = SystemRandom::new().fill(secret.as_mut_slice());
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_slice()), entries: Mutex::default() }
    }

    /// The scrubber for `needles`, built once per distinct set (order-sensitive).
    pub fn get<N: AsRef<[u8]>>(&self, needles: &[N]) -> Result<Arc<Scrubber>, EgressError> {
        let mut ctx = hmac::Context::with_key(&self.key);
        for needle in needles {
            let needle = needle.as_ref();
            ctx.update(&(needle.len() as u64).to_be_bytes());
            ctx.update(needle);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.sign().as_ref());
        if let Some(found) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Ok(Arc::clone(found));
        }
        let scrubber = Arc::new(Scrubber::new(needles)?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        insert_bounded(&mut entries, CACHE_CAPACITY, digest, Arc::clone(&scrubber));
        Ok(scrubber)
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_cache_reuses_per_needle_set() {
        let cache = ScrubberCache::new();
        let a = cache.get(&[b"topsecret-123".as_slice()]).unwrap();
        let b = cache.get(&[b"topsecret-123".as_slice()]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get(&[b"topsecret-124".as_slice()]).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.scrub(b"x topsecret-124 y").unwrap(), b"x [REDACTED] y");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn caches_are_bounded() {
        let cache = ScrubberCache::new();
        for i in 0..CACHE_CAPACITY + 10 {
            cache.get(&[format!("needle-{i}").as_bytes()]).unwrap();
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
    }
    #[test]
    fn template_cache_compiles_once_per_body() {
        let cache = TemplateCache::default();
        let template = || {
            Template::from_json(&serde_json::json!({
                "template_id": "tpl_cache", "version": 1, "provider": "t", "description": "t",
                "allowed_schemes": ["https"], "allowed_ports": [443], "allowed_hosts": ["api.example.test"],
                "redirect_policy": {"mode": "deny"},
                "path_groups": [{
                    "group_id": "g", "risk_tier": "low", "approval_mode": "none",
                    "methods": ["GET"], "path_patterns": ["^/v1/x$"], "query_allowlist": [],
                    "header_forward_allowlist": [], "response_header_allowlist": [],
                    "body_policy": {"max_bytes": 1024, "content_types": ["application/json"]}
                }]
            }))
            .unwrap()
        };
        let mut compiled = 0;
        let mut get = |body: &str| {
            cache
                .get_or_compile("owner", "tpl", 1, body, || {
                    compiled += 1;
                    Ok::<_, ()>(template())
                })
                .unwrap()
        };
        let a = get("body-1");
        let b = get("body-1");
        assert!(Arc::ptr_eq(&a, &b));
        let c = get("body-2");
        assert!(!Arc::ptr_eq(&a, &c), "a different stored body is compiled again");
        assert_eq!(compiled, 2);
        assert_eq!(cache.len(), 1);
    }
}
