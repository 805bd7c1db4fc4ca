//! The SSRF classifier of `pipeline.md` "SSRF guard": every range of the spec, checked in the spec's
//! order, first match wins. Metadata addresses are never exemptible — neither as themselves nor as the
//! IPv4 address embedded in an IPv6 transition address — and `allow_cidrs` exempts from the other
//! four checks only.

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use steward_types::ErrorCode;

/// Cloud metadata endpoints (check 1, never exemptible).
const METADATA_V4: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 169, 253),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(192, 0, 0, 192),
];
const METADATA_V6: &[Ipv6Addr] =
    &[Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)];

/// An IPv4 prefix: base address and length.
type V4 = (Ipv4Addr, u32);
/// An IPv6 prefix: base address and length.
type V6 = (Ipv6Addr, u32);

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u32) -> V4 {
    (Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u32) -> V6 {
    (Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Checks 2 to 5, in order, each with its code and ranges.
const CHECKS: &[(ErrorCode, &[V4], &[V6])] = &[
    (ErrorCode::ResolvedIpDeniedLoopback, &[v4(127, 0, 0, 0, 8)], &[v6(0, 0, 0, 0, 0, 0, 0, 1, 128)]),
    (
        ErrorCode::ResolvedIpDeniedPrivateRange,
        &[v4(10, 0, 0, 0, 8), v4(172, 16, 0, 0, 12), v4(192, 168, 0, 0, 16), v4(100, 64, 0, 0, 10)],
        &[v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10)],
    ),
    (ErrorCode::ResolvedIpDeniedLinkLocal, &[v4(169, 254, 0, 0, 16)], &[v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10)]),
    (
        ErrorCode::ResolvedIpDeniedReserved,
        &[
            v4(0, 0, 0, 0, 8),
            v4(192, 0, 0, 0, 24),
            v4(192, 0, 2, 0, 24),
            v4(192, 88, 99, 0, 24),
            v4(198, 18, 0, 0, 15),
            v4(198, 51, 100, 0, 24),
            v4(203, 0, 113, 0, 24),
            v4(224, 0, 0, 0, 4),
            v4(240, 0, 0, 0, 4),
        ],
        &[
            v6(0, 0, 0, 0, 0, 0, 0, 0, 128),
            v6(0, 0, 0, 0, 0, 0, 0, 0, 96),
            v6(0, 0, 0, 0, 0xffff, 0, 0, 0, 96),
            v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96),
            v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48),
            v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64),
            v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32),
            v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32),
            v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16),
            v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20),
            v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8),
        ],
    ),
];

/// Classifies one address: `Ok` when it may be connected to, else the `resolved_ip_denied_*` code.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is classified as the IPv4 address it carries; no
/// other IPv6 form is mapped for checks 2–5. Check 1 (metadata) also looks at the IPv4 address that
/// an IPv6 transition address embeds ([`embedded_ipv4`]). `allow` exempts from checks 2–5 (it is
/// matched against both the address as given and its mapped IPv4 form), never from the metadata check.
pub fn classify(ip: IpAddr, allow: &[IpNet]) -> Result<(), ErrorCode> {
    let effective = unmap(ip);
    if is_metadata(effective) || embedded_ipv4(ip).is_some_and(|v4| is_metadata(IpAddr::V4(v4))) {
        return Err(ErrorCode::ResolvedIpDeniedMetadataRange);
    }
    if allow.iter().any(|net| net.contains(&effective) || net.contains(&ip)) {
        return Ok(());
    }
    for (code, v4s, v6s) in CHECKS {
        let hit = match effective {
            IpAddr::V4(a) => v4s
                .iter()
                .any(|&(base, len)| prefix_match(a.to_bits().into(), base.to_bits().into(), len, 32)),
            IpAddr::V6(a) => {
                v6s.iter().any(|&(base, len)| prefix_match(a.to_bits(), base.to_bits(), len, 128))
            }
        };
        if hit {
            return Err(*code);
        }
    }
    Ok(())
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`; everything else is returned as is.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The IPv4 address a translator or tunnel would reach for an IPv6 transition address:
/// - NAT64 `64:ff9b::/96` (RFC 6052) and `64:ff9b:1::/48` (RFC 8215): the last 32 bits;
/// - 6to4 `2002::/16` (RFC 3056): bits 16–47;
/// - Teredo `2001::/32` (RFC 4380): the last 32 bits, inverted (the client's obfuscated address);
/// - IPv4-compatible `::/96` (RFC 4291, deprecated) and SIIT `::ffff:0:0:0/96` (RFC 2765): the last
///   32 bits — not named by the spec for check 1, included because a translator reaches them too.
///
/// `None` for every other address (IPv4-mapped addresses are handled by [`unmap`]).
pub(crate) fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let bits = v6.to_bits();
    // Truncation is the point: each form keeps its IPv4 address in a fixed 32-bit field.
    #[allow(clippy::cast_possible_truncation)]
    let field = |shift: u32| Ipv4Addr::from_bits((bits >> shift) as u32);
    let in_prefix = |(base, len): V6| prefix_match(bits, base.to_bits(), len, 128);
    if in_prefix(NAT64_WELL_KNOWN) || in_prefix(NAT64_LOCAL) || in_prefix(IPV4_COMPATIBLE) || in_prefix(SIIT)
    {
        Some(field(0))
    } else if in_prefix(SIX_TO_FOUR) {
        Some(field(80))
    } else if in_prefix(TEREDO) {
        Some(Ipv4Addr::from_bits(!field(0).to_bits()))
    } else {
        None
    }
}

const NAT64_WELL_KNOWN: V6 = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);
const NAT64_LOCAL: V6 = v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48);
const IPV4_COMPATIBLE: V6 = v6(0, 0, 0, 0, 0, 0, 0, 0, 96);
const SIIT: V6 = v6(0, 0, 0, 0, 0xffff, 0, 0, 0, 96);
const SIX_TO_FOUR: V6 = v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16);
const TEREDO: V6 = v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32);

fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => METADATA_V4.contains(&a),
        IpAddr::V6(a) => METADATA_V6.contains(&a),
    }
}

/// True when the first `len` bits of `addr` and `base` (both `width` bits wide) agree.
fn prefix_match(addr: u128, base: u128, len: u32, width: u32) -> bool {
    if len == 0 {
        return true;
    }
    let shift = width - len.min(width);
    (addr >> shift) == (base >> shift)
}
