//! The client's address behind a load balancer (`server.trusted_proxies`). The TCP peer is the client
//! unless it is one of the trusted proxies; only then are `Forwarded` (RFC 7239) or, when there is none,
//! `X-Forwarded-For` read, from the right (the hop nearest to us) to the left, skipping trusted proxies:
//! the first address that is not a trusted proxy is the client. Anything that does not parse (an
//! obfuscated `_node` or `unknown`, garbage, a port without brackets on IPv6, too many hops) stops the
//! walk: the client is then the last trusted hop that said so, never an address a client could have put
//! at the left of the header. Without trusted proxies these headers are ignored entirely.
//!
//! Rate limits (admin sign-in) and the access log use this address (`ClientAddr` in the request's
//! extensions).

use std::net::IpAddr;

use ipnet::IpNet;

/// The key a client address is counted under by rate limits: an IPv4 address as it is, an IPv6 address by
/// its /64 (one subscriber usually holds a whole /64, so counting single IPv6 addresses would give one
/// client 2^64 buckets).
pub fn rate_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// At most this many hops are read from the forwarding headers (each is a network hop; more is abuse).
const MAX_HOPS: usize = 32;

/// The client address for a request from `peer` with these forwarding header values (every
/// `Forwarded` line in order, and every `X-Forwarded-For` line in order).
pub fn resolve(
    peer: IpAddr,
    forwarded: &[&str],
    x_forwarded_for: &[&str],
    trusted: &[IpNet],
) -> IpAddr {
    // One address, one form (limits and logs): IPv4-mapped IPv6 peers as IPv4.
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| forwarded_for(element).unwrap_or("\u{0}"))
            .collect()
    } else {
        x_forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Some(ip) = parse_node(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`), without
/// its quotes; None when it has none.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// An address as the forwarding headers write it: `192.0.2.60`, `192.0.2.60:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`, or a bare `2001:db8::1` (X-Forwarded-For). None for anything else.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if node.len() > 64 {
        return None;
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
            .map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) as IPv4, so that one address has one form in limits and logs.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rate_key_groups_ipv6_by_64() {
        assert_eq!(rate_key(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(rate_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            rate_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            rate_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:3::1")),
            rate_key(ip("2001:db8:1:2::1"))
        );
    }

    fn lb() -> Vec<IpNet> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let peer = ip("203.0.113.9");
        for (f, x) in [
            (vec!["for=198.51.100.1"], vec![]),
            (vec![], vec!["198.51.100.1"]),
            (vec![], vec!["10.0.0.1, 198.51.100.1"]),
        ] {
            assert_eq!(resolve(peer, &f, &x, &lb()), peer);
        }
        // A mapped IPv6 peer is the same client as its IPv4 form.
        assert_eq!(resolve(ip("::ffff:203.0.113.9"), &[], &[], &lb()), peer);
        // No trusted proxies configured: the headers are never read.
        assert_eq!(
            resolve(ip("10.0.0.2"), &[], &["198.51.100.1"], &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_walk_goes_from_the_right_and_skips_trusted_proxies() {
        let peer = ip("10.0.0.2");
        // A client-chosen value at the left is never taken: the rightmost untrusted address is.
        assert_eq!(
            resolve(peer, &[], &["6.6.6.6, 198.51.100.7, 10.1.1.1"], &lb()),
            ip("198.51.100.7")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            resolve(peer, &[], &["6.6.6.6", "198.51.100.7", "10.1.1.1"], &lb()),
            ip("198.51.100.7")
        );
        // Forwarded wins over X-Forwarded-For; quoted IPv6 with a port; case of `for`.
        assert_eq!(
            resolve(
                peer,
                &[
                    "for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.2.2.2;by=10.0.0.2"
                ],
                &["198.51.100.7"],
                &lb()
            ),
            ip("2001:db8:cafe::17")
        );
        // Every hop trusted: the leftmost one.
        assert_eq!(
            resolve(peer, &[], &["10.3.3.3, 10.4.4.4"], &lb()),
            ip("10.3.3.3")
        );
        // No header: the peer.
        assert_eq!(resolve(peer, &[], &[], &lb()), peer);
    }

    #[test]
    fn what_does_not_parse_stops_the_walk_at_the_last_trusted_hop() {
        let peer = ip("10.0.0.2");
        for hostile in [
            "unknown",
            "_hidden",
            "",
            "198.51.100.7\r\nX-Admin: 1",
            "2001:db8::1:8080x",
            "[2001:db8::1",
            "[2001:db8::1]:port",
            "198.51.100.7:99999999",
            "localhost",
            "1.2.3.4.5",
            "9999999999999999999999999999999999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                resolve(
                    peer,
                    &[],
                    &[&format!("6.6.6.6, {hostile}, 10.1.1.1")],
                    &lb()
                ),
                ip("10.1.1.1"),
                "{hostile:?}"
            );
        }
        // A Forwarded element without `for=` is an unknown hop, too.
        assert_eq!(
            resolve(peer, &["proto=https, for=10.1.1.1"], &[], &lb()),
            ip("10.1.1.1")
        );
        // Ports and IPv4-mapped IPv6 are read as the plain address.
        assert_eq!(
            resolve(peer, &[], &["198.51.100.7:5000"], &lb()),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("::ffff:10.0.0.2"), &[], &["::ffff:198.51.100.7"], &lb()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn many_hops_are_bounded() {
        let peer = ip("10.0.0.2");
        let mut chain: Vec<String> = vec!["6.6.6.6".into()];
        chain.extend((0..100).map(|i| format!("10.9.{}.{}", i / 250, i % 250)));
        let line = chain.join(", ");
        // The walk stops after MAX_HOPS trusted hops; the attacker's address at the far left is not taken.
        assert_ne!(resolve(peer, &[], &[&line], &lb()), ip("6.6.6.6"));
    }
}
