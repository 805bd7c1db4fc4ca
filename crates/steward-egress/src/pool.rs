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
use tokio::task::AbortHandle;

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
    pub(crate) task: ConnTask,
}

impl Conn {
    /// Closes the connection now (a response not read to its end, a refused head): the same as
    /// dropping it, said out loud.
    pub(crate) fn close(self) {
        drop(self);
    }
}

/// The task driving one connection. Dropping it aborts the task, which drops the socket and so
/// closes the connection at once: a connection that is neither in use nor idle in the pool (a
/// response abandoned before its end, a refused head, a timed-out call, an expired or evicted idle
/// entry) never lingers half-read, whatever hyper would do with it on its own.
#[derive(Debug)]
pub(crate) struct ConnTask(pub(crate) AbortHandle);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    task: ConnTask,
    since: Instant,
}

/// How often a check-in sweeps every key for expired or closed connections (between sweeps only the
/// checked-in key's expired entries are dropped, so a check-in's cost does not grow with the total
/// number of idle connections).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Inner {
    /// Per key, oldest first (check-in pushes, check-out pops the most recent).
    by_key: HashMap<PoolKey, Vec<Idle>>,
    last_sweep: Instant,
}

#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<Inner>,
    idle_timeout: Duration,
    max_idle_per_key: usize,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_idle_per_key: usize) -> Self {
        Self {
            idle: Mutex::new(Inner { by_key: HashMap::new(), last_sweep: Instant::now() }),
            idle_timeout,
            max_idle_per_key,
        }
    }

    /// The most recently used live idle connection to `host:port` at one of `addrs`, if any.
    pub(crate) fn checkout(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for addr in addrs {
            let key = PoolKey { host: host.to_owned(), port, addr: *addr };
            let Some(list) = idle.by_key.get_mut(&key) else { continue };
            while let Some(entry) = list.pop() {
                if now.duration_since(entry.since) < self.idle_timeout && !entry.sender.is_closed() {
                    return Some(Conn { key, sender: entry.sender, task: entry.task });
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
        let mut guard = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = &mut *guard;
        let timeout = self.idle_timeout;
        let live = |entry: &Idle| now.duration_since(entry.since) < timeout && !entry.sender.is_closed();
        if now.duration_since(idle.last_sweep) >= SWEEP_INTERVAL {
            idle.by_key.retain(|_, list| {
                list.retain(live);
                !list.is_empty()
            });
            idle.last_sweep = now;
        }
        let list = idle.by_key.entry(conn.key).or_default();
        let expired = list.iter().take_while(|entry| now.duration_since(entry.since) >= timeout).count();
        list.drain(..expired);
        if list.len() >= self.max_idle_per_key {
            list.remove(0);
        }
        list.push(Idle { sender: conn.sender, task: conn.task, since: now });
    }

    /// Number of idle connections (for tests and metrics).
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.by_key.values().map(Vec::len).sum()
    }
}
