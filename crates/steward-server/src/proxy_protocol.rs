//! PROXY protocol version 2 (the binary form HAProxy specifies), read from a data-plane connection
//! before the TLS handshake when `data_plane.proxy_protocol = true`, so `ip_allowlist` sees the client
//! behind a TCP load balancer rather than the balancer itself.
//!
//! Strict on purpose: only the v2 signature, version 2, the `LOCAL` command (a health check by the
//! balancer: the TCP peer is used) and the `PROXY` command over `AF_INET`/`AF_INET6` with `STREAM`
//! are accepted; TLVs are skipped; the header must arrive within [`HEADER_TIMEOUT`] and its address
//! block may be at most [`MAX_ADDRESS_BLOCK`] bytes. Anything else closes the connection. Exactly the
//! header's bytes are read from the socket, so the TLS handshake that follows starts at its first byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// How long a client (the load balancer) may take to send the whole header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest address block (addresses plus TLVs) accepted. The format allows 65535; balancers send
/// well under 1 KiB even with their TLVs, and a bound keeps a slow or hostile peer from holding memory.
pub const MAX_ADDRESS_BLOCK: usize = 4096;

const FIXED_LEN: usize = 16;
const INET_LEN: usize = 12;
const INET6_LEN: usize = 36;

/// Why a connection's PROXY header was refused. `reason()` is a bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol v2 signature")]
    Signature,
    #[error("PROXY protocol version {0} is not supported (only 2)")]
    Version(u8),
    #[error("PROXY protocol command {0:#x} is not LOCAL or PROXY")]
    Command(u8),
    #[error("PROXY protocol address family/transport {0:#04x} is not TCP over IPv4 or IPv6")]
    Family(u8),
    #[error("the PROXY header's address block ({0} bytes) is too short for its family")]
    Truncated(usize),
    #[error("the PROXY header's address block ({0} bytes) exceeds the {MAX_ADDRESS_BLOCK}-byte bound")]
    TooLong(usize),
    #[error("the PROXY header did not arrive within {} s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    #[error("reading the PROXY header failed: {0}")]
    Io(String),
}

impl ProxyHeaderError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Version(_) => "version",
            Self::Command(_) => "command",
            Self::Family(_) => "family",
            Self::Truncated(_) => "truncated",
            Self::TooLong(_) => "too_long",
            Self::Timeout => "timeout",
            Self::Io(_) => "io",
        }
    }
}

/// What the header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `LOCAL`: the balancer's own connection (health checks); use the TCP peer.
    Local,
    /// `PROXY`: the original client's address and the address it connected to.
    Proxied { source: SocketAddr, destination: SocketAddr },
}

impl ProxyHeader {
    /// The client address to attribute the connection to.
    pub fn client(&self, tcp_peer: SocketAddr) -> SocketAddr {
        match self {
            Self::Local => tcp_peer,
            Self::Proxied { source, .. } => *source,
        }
    }
}

/// The fixed 16-byte part: command, family byte and the address block's length, after checking the
/// signature and version.
pub fn parse_fixed(fixed: &[u8; FIXED_LEN]) -> Result<(u8, u8, usize), ProxyHeaderError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyHeaderError::Signature);
    }
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::Version(version));
    }
    let command = fixed[12] & 0x0f;
    if command > 1 {
        return Err(ProxyHeaderError::Command(command));
    }
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > MAX_ADDRESS_BLOCK {
        return Err(ProxyHeaderError::TooLong(length));
    }
    Ok((command, fixed[13], length))
}

/// The address block of a header whose fixed part gave `command` and `family`; TLVs after the
/// addresses are skipped.
pub fn parse_addresses(command: u8, family: u8, block: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    if command == 0 {
        // LOCAL: the receiver must ignore the family and any address block.
        return Ok(ProxyHeader::Local);
    }
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        0x11 => {
            if block.len() < INET_LEN {
                return Err(ProxyHeaderError::Truncated(block.len()));
            }
            let src = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            let dst = Ipv4Addr::new(block[4], block[5], block[6], block[7]);
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V4(src), port(8)),
                destination: SocketAddr::new(IpAddr::V4(dst), port(10)),
            })
        }
        0x21 => {
            if block.len() < INET6_LEN {
                return Err(ProxyHeaderError::Truncated(block.len()));
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            })
        }
        other => Err(ProxyHeaderError::Family(other)),
    }
}

/// Parses a complete header held in memory (tests and fuzzing); returns it and its length.
pub fn parse(bytes: &[u8]) -> Result<(ProxyHeader, usize), ProxyHeaderError> {
    let Some(fixed) = bytes.get(..FIXED_LEN) else {
        // A prefix of the signature is still "not yet", but in memory there is no more to come.
        return Err(if SIGNATURE.starts_with(&bytes[..bytes.len().min(12)]) {
            ProxyHeaderError::Truncated(bytes.len())
        } else {
            ProxyHeaderError::Signature
        });
    };
    let fixed: &[u8; FIXED_LEN] = fixed.try_into().map_err(|_| ProxyHeaderError::Truncated(bytes.len()))?;
    let (command, family, length) = parse_fixed(fixed)?;
    let block = bytes
        .get(FIXED_LEN..FIXED_LEN + length)
        .ok_or(ProxyHeaderError::Truncated(bytes.len().saturating_sub(FIXED_LEN)))?;
    Ok((parse_addresses(command, family, block)?, FIXED_LEN + length))
}

/// Reads exactly one header from `stream` (nothing past it), within [`HEADER_TIMEOUT`].
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxyHeader, ProxyHeaderError> {
    read_header_within(stream, HEADER_TIMEOUT).await
}

/// [`read_header`] with a given timeout.
pub async fn read_header_within<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyHeaderError> {
    let read = async {
        let mut fixed = [0u8; FIXED_LEN];
        // Check the signature as soon as its bytes are in, so a client speaking TLS directly is
        // refused without waiting for 16 bytes it may never send.
        let mut filled = 0;
        while filled < FIXED_LEN {
            let n =
                stream.read(&mut fixed[filled..]).await.map_err(|e| ProxyHeaderError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ProxyHeaderError::Io("the connection closed inside the header".into()));
            }
            let checked = (filled + n).min(SIGNATURE.len());
            if fixed[..checked] != SIGNATURE[..checked] {
                return Err(ProxyHeaderError::Signature);
            }
            filled += n;
        }
        let (command, family, length) = parse_fixed(&fixed)?;
        let mut block = vec![0u8; length];
        stream.read_exact(&mut block).await.map_err(|e| ProxyHeaderError::Io(e.to_string()))?;
        parse_addresses(command, family, &block)
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| ProxyHeaderError::Timeout)?
}

/// Builds a v2 header (tests, and the fixtures of other crates' tests): `PROXY` from `source` to
/// `destination` (same family), or `LOCAL` when `source` is `None`; `tlvs` appended raw.
pub fn encode(source: Option<(SocketAddr, SocketAddr)>, tlvs: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    let mut block = Vec::new();
    match source {
        None => {
            out.push(0x20);
            out.push(0x00);
        }
        Some((src, dst)) => {
            out.push(0x21);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    block.extend_from_slice(&s.octets());
                    block.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21);
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    block.extend_from_slice(&v6(s).octets());
                    block.extend_from_slice(&v6(d).octets());
                }
            }
            block.extend_from_slice(&src.port().to_be_bytes());
            block.extend_from_slice(&dst.port().to_be_bytes());
        }
    }
    block.extend_from_slice(tlvs);
    let length = u16::try_from(block.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&block);
    out
}

#[cfg(test)]
mod tests;
