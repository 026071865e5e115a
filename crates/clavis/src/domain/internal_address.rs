//! Which IP addresses are "internal": this machine, private networks,
//! link-local (the cloud metadata service at 169.254.169.254), carrier-grade
//! NAT, multicast, broadcast, unspecified and reserved blocks, including
//! IPv6 forms that embed one of those IPv4 addresses (IPv4-mapped and
//! -compatible, NAT64, 6to4). Outbound requests that a caller chooses the
//! target of (webhooks) must not reach them unless the operator allows it
//! (server-side request forgery). Plain functions, no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is an address an outside caller must not make Clavis
/// connect to.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_internal(v4),
        IpAddr::V6(v6) => v6_internal(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v4_internal(ip: Ipv4Addr) -> bool {
    const BLOCKS: [([u8; 4], u32); 11] = [
        ([0, 0, 0, 0], 8),      // "this network", incl. 0.0.0.0 (unspecified)
        ([10, 0, 0, 0], 8),     // private (RFC 1918)
        ([100, 64, 0, 0], 10),  // carrier-grade NAT (RFC 6598)
        ([127, 0, 0, 0], 8),    // loopback
        ([169, 254, 0, 0], 16), // link-local, incl. cloud metadata 169.254.169.254
        ([172, 16, 0, 0], 12),  // private (RFC 1918)
        ([192, 0, 0, 0], 24),   // IETF protocol assignments
        ([192, 168, 0, 0], 16), // private (RFC 1918)
        ([198, 18, 0, 0], 15),  // benchmarking (RFC 2544)
        ([224, 0, 0, 0], 4),    // multicast
        ([240, 0, 0, 0], 4),    // reserved, incl. broadcast 255.255.255.255
    ];
    BLOCKS.iter().any(|&(net, prefix)| in_v4(ip, net, prefix))
}

fn v6_internal(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    // ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:a.b.c.d (IPv4-mapped).
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return v4_internal(embedded(s[6], s[7]));
    }
    // 64:ff9b::a.b.c.d and 64:ff9b:1::/48 (NAT64): a gateway turns them into IPv4.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return v4_internal(embedded(s[6], s[7]));
    }
    // 2002:a.b.c.d::/48 (6to4).
    if s[0] == 0x2002 {
        return v4_internal(embedded(s[1], s[2]));
    }
    let first = s[0];
    (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (first & 0xff00) == 0xff00 // multicast ff00::/8
}

/// Whether a URL's host names this machine by name (`localhost` and the
/// `.localhost` names RFC 6761 reserves for it), so that it can be refused
/// before any lookup.
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_blocks_are_recognised() {
        for internal in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.9.8.7",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
        ] {
            assert!(is_internal(ip(internal)), "{internal} is internal");
        }
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "169.253.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn this_machine_by_name() {
        for local in ["localhost", "LOCALHOST.", "a.localhost", "x.y.LocalHost"] {
            assert!(is_local_name(local), "{local}");
        }
        for other in ["localhost.example.com", "mylocalhost", "example.com"] {
            assert!(!is_local_name(other), "{other}");
        }
    }
}
