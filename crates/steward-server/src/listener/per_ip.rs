//! `max_connections_per_ip`: how many connections each client address holds, counted while they
//! are open. The address is the TCP peer, or the PROXY v2 source; IPv4-mapped IPv6 counts as IPv4.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections by client address.
#[derive(Debug)]
pub struct PerIp {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct PerIpPermit {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, counts: Mutex::new(HashMap::new()) })
    }

    /// A slot for `ip`, or `None` when it already holds `cap` connections.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpPermit> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PerIpPermit { table: Arc::clone(self), ip })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for PerIpPermit {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
