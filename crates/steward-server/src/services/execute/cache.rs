//! Small bounded in-process caches of the execute path (issue 8, `docs/performance.md`):
//!
//! - [`TemplateCache`]: compiled templates by (owner, id, version). Published versions are immutable,
//!   and the cached entry also keeps the stored body it was compiled from, so a body that differs
//!   (a version deleted and published again) is compiled afresh rather than served stale.
//! - [`ScrubberCache`]: built scrubbers, one per integration, for its current secret version. A
//!   scrubber holds secret material (the needles and their encoded forms, in buffers wiped when it is
//!   dropped), so this cache is bounded by bytes as well as entries, drops an integration's entry as
//!   soon as a newer secret version (or, for OAuth2, a new token: different needles) is seen, and
//!   never serves an older version's scrubber. Which needles an entry was built from is checked by
//!   an HMAC-SHA-256 under a random per-process key; the cache keeps no other copy of them.
//!
//! Both are bounded: when full, entries are evicted before inserting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use steward_canon::Template;
use steward_crypto::HmacKey;
use steward_egress::{EgressError, Scrubber};

use crate::read_cache::insert_bounded;

/// Entries kept by each cache.
pub const CACHE_CAPACITY: usize = 1024;

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

/// Heap bytes the [`ScrubberCache`] may hold (as [`Scrubber::heap_bytes`] counts them).
pub const SCRUBBER_CACHE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Built scrubbers, one per integration: the scrubber of its newest secret version seen.
pub struct ScrubberCache {
    key: HmacKey,
    max_entries: usize,
    max_bytes: usize,
    state: Mutex<ScrubberEntries>,
}

#[derive(Default)]
struct ScrubberEntries {
    by_integration: HashMap<String, ScrubberEntry>,
    /// Sum of the entries' `bytes`.
    bytes: usize,
    /// Use counter, for least-recently-used eviction.
    clock: u64,
}

struct ScrubberEntry {
    secret_version: u64,
    /// HMAC of the needles the scrubber was built from.
    digest: [u8; 32],
    scrubber: Arc<Scrubber>,
    bytes: usize,
    last_used: u64,
}

impl std::fmt::Debug for ScrubberCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrubberCache")
            .field("entries", &self.len())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl Default for ScrubberCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ScrubberCache {
    /// An empty cache with a fresh random hashing key, bounded by [`CACHE_CAPACITY`] entries and
    /// [`SCRUBBER_CACHE_MAX_BYTES`].
    pub fn new() -> Self {
        Self::with_limits(CACHE_CAPACITY, SCRUBBER_CACHE_MAX_BYTES)
    }

    /// An empty cache holding at most `max_entries` scrubbers and `max_bytes` of them.
    pub fn with_limits(max_entries: usize, max_bytes: usize) -> Self {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        // A failing system RNG leaves the key all-zero: still a correct (if unsalted) cache key.
        let _ = SystemRandom::new().fill(secret.as_mut_slice());
        Self { key: HmacKey::new(secret.as_slice()), max_entries, max_bytes, state: Mutex::default() }
    }

    /// The scrubber for `needles`, the needles of `integration_id`'s secret version
    /// `secret_version`: from the cache when it was built from the same needles for the same
    /// version. A newer version (or other needles of the same version: a new OAuth2 token) replaces
    /// the integration's entry, and the old scrubber is dropped — wiped — once no call uses it. An
    /// older version than the one cached is built for this call only.
    pub fn get<N: AsRef<[u8]>>(
        &self,
        integration_id: &str,
        secret_version: u64,
        needles: &[N],
    ) -> Result<Arc<Scrubber>, EgressError> {
        let digest = self.digest(needles);
        let evicted = {
            let mut state = self.lock();
            state.clock += 1;
            let clock = state.clock;
            match state.by_integration.get_mut(integration_id) {
                Some(entry) if entry.secret_version == secret_version && entry.digest == digest => {
                    entry.last_used = clock;
                    return Ok(Arc::clone(&entry.scrubber));
                }
                Some(entry) if entry.secret_version > secret_version => None,
                Some(_) => state.remove(integration_id),
                None => None,
            }
        };
        // Dropped outside the lock: the last reference wipes the scrubber's needles.
        drop(evicted);
        let scrubber = Arc::new(Scrubber::new(needles)?);
        let bytes = scrubber.heap_bytes();
        let mut evicted = Vec::new();
        {
            let mut state = self.lock();
            let newer_cached = state.by_integration.get(integration_id).is_some_and(|e| {
                e.secret_version > secret_version
                    || (e.secret_version == secret_version && e.digest == digest)
            });
            if !newer_cached && bytes <= self.max_bytes && self.max_entries > 0 {
                evicted.extend(state.remove(integration_id));
                while state.by_integration.len() >= self.max_entries || state.bytes + bytes > self.max_bytes {
                    match state.least_recently_used() {
                        Some(victim) => evicted.extend(state.remove(&victim)),
                        None => break,
                    }
                }
                state.clock += 1;
                let entry = ScrubberEntry {
                    secret_version,
                    digest,
                    scrubber: Arc::clone(&scrubber),
                    bytes,
                    last_used: state.clock,
                };
                state.bytes += bytes;
                state.by_integration.insert(integration_id.to_owned(), entry);
            }
        }
        drop(evicted);
        Ok(scrubber)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().by_integration.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes of the scrubbers held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScrubberEntries> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn digest<N: AsRef<[u8]>>(&self, needles: &[N]) -> [u8; 32] {
        let mut ctx = self.key.context();
        for needle in needles {
            let needle = needle.as_ref();
            ctx.update(&(needle.len() as u64).to_be_bytes());
            ctx.update(needle);
        }
        ctx.finish()
    }
}

impl ScrubberEntries {
    /// Takes an entry out (the caller drops it outside the lock).
    fn remove(&mut self, integration_id: &str) -> Option<Arc<Scrubber>> {
        let entry = self.by_integration.remove(integration_id)?;
        self.bytes -= entry.bytes;
        Some(entry.scrubber)
    }

    fn least_recently_used(&self) -> Option<String> {
        self.by_integration.iter().min_by_key(|(_, e)| e.last_used).map(|(id, _)| id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_cache_reuses_per_version_and_needles() {
        let cache = ScrubberCache::new();
        let a = cache.get("int_a", 1, &[b"topsecret-123".as_slice()]).unwrap();
        let b = cache.get("int_a", 1, &[b"topsecret-123".as_slice()]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = cache.get("int_b", 1, &[b"topsecret-124".as_slice()]).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(other.scrub(b"x topsecret-124 y").unwrap(), b"x [REDACTED] y");
        assert_eq!(cache.len(), 2);
        // Other needles for the same version (a new OAuth2 access token) replace the entry.
        let rotated = cache.get("int_a", 1, &[b"topsecret-125".as_slice()]).unwrap();
        assert!(!Arc::ptr_eq(&a, &rotated));
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&rotated, &cache.get("int_a", 1, &[b"topsecret-125".as_slice()]).unwrap()));
    }

    #[test]
    fn a_newer_secret_version_drops_the_old_scrubber() {
        let cache = ScrubberCache::new();
        let old = Arc::downgrade(&cache.get("int_a", 1, &[b"old-secret-1".as_slice()]).unwrap());
        assert!(old.upgrade().is_some(), "the cache holds version 1");
        let new = cache.get("int_a", 2, &[b"new-secret-2".as_slice()]).unwrap();
        // Nothing else held version 1's scrubber: it was dropped, and its needles wiped with it.
        assert!(old.upgrade().is_none(), "version 1's scrubber is still alive");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), new.heap_bytes());
        // A call that still read version 1 gets a scrubber for this call only: version 2 stays.
        let stale = {
            let stale = cache.get("int_a", 1, &[b"old-secret-1".as_slice()]).unwrap();
            assert_eq!(stale.scrub(b"old-secret-1").unwrap(), b"[REDACTED]");
            Arc::downgrade(&stale)
        };
        assert!(stale.upgrade().is_none(), "an older version was cached");
        assert!(Arc::ptr_eq(&new, &cache.get("int_a", 2, &[b"new-secret-2".as_slice()]).unwrap()));
        // A scrubber in use when it is replaced lives until the call ends.
        let in_use = cache.get("int_a", 2, &[b"new-secret-2".as_slice()]).unwrap();
        let weak = Arc::downgrade(&in_use);
        drop(new);
        cache.get("int_a", 3, &[b"newest-secret-3".as_slice()]).unwrap();
        assert!(weak.upgrade().is_some());
        drop(in_use);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn scrubber_cache_is_bounded_by_bytes() {
        let needle = |i: usize| format!("secret-{i:04}-").repeat(20);
        let one = Scrubber::new(&[needle(0).as_bytes()]).unwrap().heap_bytes();
        let budget = 3 * one + one / 2;
        let cache = ScrubberCache::with_limits(CACHE_CAPACITY, budget);
        let mut weak = Vec::new();
        for i in 0..10 {
            let scrubber = cache.get(&format!("int_{i}"), 1, &[needle(i).as_bytes()]).unwrap();
            weak.push(Arc::downgrade(&scrubber));
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        assert_eq!(cache.len(), 3);
        // The least recently used went first, and nothing evicted is still alive.
        let alive: Vec<usize> = (0..10).filter(|i| weak[*i].upgrade().is_some()).collect();
        assert_eq!(alive, vec![7, 8, 9]);
        // A scrubber larger than the whole budget is used but not kept.
        let huge = "x".repeat(budget);
        cache.get("int_huge", 1, &[huge.as_bytes()]).unwrap();
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= budget);
    }

    #[test]
    fn caches_are_bounded() {
        let cache = ScrubberCache::new();
        for i in 0..CACHE_CAPACITY + 10 {
            cache.get(&format!("int_{i}"), 1, &[format!("needle-{i}").as_bytes()]).unwrap();
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
