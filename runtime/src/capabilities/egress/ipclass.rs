//! Classifies resolved addresses that an outbound request must not reach
//! unless the operator allowed that exact host and port: loopback, private,
//! link-local (cloud metadata at 169.254.169.254), unspecified, multicast
//! and the like, including IPv6 forms that embed an IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The reason an address is internal, or `None` for a public address.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 192 && b == 0 && c == 0 {
        Some("protocol assignment")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some("documentation")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else {
        None
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4).or(Some("ipv4-mapped"));
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) embed an IPv4
    // address that the network may route to.
    let embedded = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(v4_class(embedded).unwrap_or("ipv4-compatible"));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        return v4_class(embedded).or(Some("nat64"));
    }
    if seg[0] == 0x2002 {
        // 6to4 embeds the IPv4 address in segments 1 and 2.
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return v4_class(v4).or(Some("6to4"));
    }
    if (seg[0] & 0xfe00) == 0xfc00 {
        Some("unique local")
    } else if (seg[0] & 0xffc0) == 0xfe80 || (seg[0] & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        Some("documentation")
    } else if seg[0] == 0x0100 && seg[1..4] == [0, 0, 0] {
        Some("discard-only")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        internal_class(s.parse().unwrap())
    }

    #[test]
    fn internal_ipv4_is_classified() {
        assert_eq!(class("127.0.0.1"), Some("loopback"));
        assert_eq!(class("127.255.0.9"), Some("loopback"));
        assert_eq!(class("10.1.2.3"), Some("private"));
        assert_eq!(class("172.16.0.1"), Some("private"));
        assert_eq!(class("192.168.1.1"), Some("private"));
        assert_eq!(class("169.254.169.254"), Some("link-local"));
        assert_eq!(class("0.0.0.0"), Some("unspecified"));
        assert_eq!(class("224.0.0.1"), Some("multicast"));
        assert_eq!(class("255.255.255.255"), Some("reserved"));
        assert_eq!(class("100.64.0.1"), Some("shared address space"));
    }

    #[test]
    fn public_addresses_pass() {
        assert_eq!(class("93.184.216.34"), None);
        assert_eq!(class("172.32.0.1"), None);
        assert_eq!(class("2606:4700::1111"), None);
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_unwrapped() {
        assert_eq!(class("::1"), Some("loopback"));
        assert_eq!(class("::"), Some("unspecified"));
        assert_eq!(class("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(class("::ffff:169.254.169.254"), Some("link-local"));
        assert_eq!(class("::ffff:8.8.8.8"), Some("ipv4-mapped"));
        assert_eq!(class("::127.0.0.1"), Some("loopback"));
        assert_eq!(class("64:ff9b::10.0.0.1"), Some("private"));
        assert_eq!(class("2002:7f00:1::"), Some("loopback"));
        assert_eq!(class("fd00::1"), Some("unique local"));
        assert_eq!(class("fe80::1"), Some("link-local"));
        assert_eq!(class("ff02::1"), Some("multicast"));
    }
}
