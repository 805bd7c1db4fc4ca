//! A minimal authoritative-style UDP DNS responder: answers A and AAAA from a table, NXDOMAIN for
//! unknown names, an error rcode (SERVFAIL, REFUSED, …) for names told to fail, and counts queries.
//! Hand-rolled wire format (RFC 1035 §4).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::UdpSocket;

/// RFC 1035 / RFC 6895 response codes the tests use.
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const REFUSED: u8 = 5;

/// A query type the tests name.
pub const A: u16 = 1;
pub const AAAA: u16 = 28;

/// Answer `rcode` (and no records) to queries for `name`, of `qtype` only or of every type.
#[derive(Debug, Clone)]
pub struct Failure {
    pub name: String,
    pub qtype: Option<u16>,
    pub rcode: u8,
}

impl Failure {
    pub fn new(name: &str, qtype: Option<u16>, rcode: u8) -> Self {
        Self { name: name.to_owned(), qtype, rcode }
    }
}

pub struct DnsServer {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
}

impl DnsServer {
    /// `table`: lowercase name without trailing dot → addresses (an empty list answers NOERROR with
    /// no records).
    pub async fn start(table: HashMap<String, Vec<IpAddr>>) -> Self {
        Self::start_with_failures(table, Vec::new()).await
    }

    /// [`DnsServer::start`], answering the `failures` first.
    pub async fn start_with_failures(table: HashMap<String, Vec<IpAddr>>, failures: Vec<Failure>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let counter = queries.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = answer(&buf[..n], &table, &failures) {
                    let _ = socket.send_to(&answer, peer).await;
                }
            }
        });
        Self { addr, queries }
    }

    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// A UDP socket that receives and never answers.
pub async fn silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}

fn answer(query: &[u8], table: &HashMap<String, Vec<IpAddr>>, failures: &[Failure]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // Question: labels, then qtype and qclass.
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let question = query.get(12..question_end)?;
    let name = labels.join(".");
    let failure = failures.iter().find(|f| f.name == name && f.qtype.is_none_or(|t| t == qtype));
    let known = if failure.is_some() { None } else { table.get(&name) };
    let records: Vec<Vec<u8>> = known
        .map(|addrs| {
            addrs
                .iter()
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), 1) => Some(v4.octets().to_vec()),
                    (IpAddr::V6(v6), 28) => Some(v6.octets().to_vec()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let rcode: u8 = match (failure, known) {
        (Some(failure), _) => failure.rcode,
        (None, Some(_)) => 0,
        (None, None) => NXDOMAIN,
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]); // id
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD copied
    out.push(0x80 | rcode); // RA, rcode
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(question);
    for rdata in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // pointer to the question name
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}
