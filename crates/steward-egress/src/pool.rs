//! A keep-alive pool of upstream HTTP/1.1 connections keyed by (host, port, validated address).
//!
//! hyper-util's legacy pool keys by URI authority only, which would let a connection made for one
//! validated address serve a later call whose guard validated a different set; this pool keys by the
//! address itself, so a connection is only reused for a call whose validated set contains its peer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

/// Pool key: the canonical host (SNI and `host`), the port and the address connected to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addr: IpAddr,
}

/// A connection ready to carry one request.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) key: PoolKey,
    pub(crate) sender: SendRequest<Full<Bytes>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    idle_timeout: Duration,
    max_idle_per_key: usize,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_idle_per_key: usize) -> Self {
        Self { idle: Mutex::new(HashMap::new()), idle_timeout, max_idle_per_key }
    }

    /// The most recently used live idle connection to `host:port` at one of `addrs`, if any.
    pub(crate) fn checkout(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for addr in addrs {
            let key = PoolKey { host: host.to_owned(), port, addr: *addr };
            let Some(list) = idle.get_mut(&key) else { continue };
            while let Some(entry) = list.pop() {
                if now.duration_since(entry.since) < self.idle_timeout && !entry.sender.is_closed() {
                    return Some(Conn { key, sender: entry.sender });
                }
            }
        }
        None
    }

    /// Returns a connection whose response was read to the end.
    pub(crate) fn checkin(&self, conn: Conn) {
        if conn.sender.is_closed() || self.max_idle_per_key == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.retain(|_, list| {
            list.retain(|entry| {
                now.duration_since(entry.since) < self.idle_timeout && !entry.sender.is_closed()
            });
            !list.is_empty()
        });
        let list = idle.entry(conn.key).or_default();
        if list.len() >= self.max_idle_per_key {
            list.remove(0);
        }
        list.push(Idle { sender: conn.sender, since: now });
    }

    /// Number of idle connections (for tests and metrics).
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
