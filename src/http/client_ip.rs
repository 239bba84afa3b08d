//! Who a request comes from. The peer of the TCP connection, unless that
//! peer is one of `server.trusted_proxies`: then the header named by
//! `server.client_ip_header`, read from the right (the hop the trusted
//! proxy added) leftwards past any other trusted proxies. The first
//! address that is not a trusted proxy is the client; whatever a client
//! wrote further left is never reached. The result is what rate limits,
//! consent records and logs use.

use std::net::{IpAddr, SocketAddr};

use axum::http::header::{HeaderName, FORWARDED};
use axum::http::{HeaderMap, HeaderValue};

use crate::config::{canonical, Cidr, ClientIpHeader};

/// The addresses of one request, as an extension every request carries
/// when it came over a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client: the peer, or what a trusted proxy said.
    pub ip: IpAddr,
}

/// Most hops read from one request: a longer chain is no proxy setup
/// anyone runs, and walking it costs the server, not the client.
const MAX_HOPS: usize = 32;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The trusted proxies and their header, worked out from the config once.
#[derive(Debug, Clone)]
pub struct Proxies {
    trusted: Vec<Cidr>,
    header: ClientIpHeader,
}

impl Proxies {
    pub fn new(trusted: &[Cidr], header: ClientIpHeader) -> Proxies {
        Proxies {
            trusted: trusted.to_vec(),
            header,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let peer_ip = canonical(peer.ip());
        let ip = if self.trusted.is_empty() || !self.trusts(peer_ip) {
            peer_ip
        } else {
            self.walk(peer_ip, headers)
        };
        ClientAddr { peer, ip }
    }

    /// From the trusted `peer` leftwards through the header's hops.
    fn walk(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let (name, hop): (&HeaderName, fn(&str) -> Option<IpAddr>) = match self.header {
            ClientIpHeader::XForwardedFor => (&X_FORWARDED_FOR, xff_hop),
            ClientIpHeader::Forwarded => (&FORWARDED, forwarded_hop),
            ClientIpHeader::XRealIp => (&X_REAL_IP, xff_hop),
        };
        let mut client = peer;
        for entry in right_to_left(headers, name).take(MAX_HOPS) {
            match entry.and_then(|e| hop(e.trim())) {
                // `unknown`, an obfuscated name, garbage: nothing to the
                // left of it can be vouched for; the last trusted hop
                // stands for the client.
                None => break,
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
            }
        }
        client
    }
}

/// The comma-separated entries of every `name` header line, last first
/// (lazily: a long forged list costs only the hops actually read). A line
/// that is not text is one entry that reads as nothing.
fn right_to_left<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    let lines: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
    lines
        .into_iter()
        .rev()
        .flat_map(|value| -> Box<dyn Iterator<Item = Option<&'a str>> + 'a> {
            match value.to_str() {
                Ok(text) => Box::new(text.rsplit(',').map(Some)),
                Err(_) => Box::new(std::iter::once(None)),
            }
        })
}

/// `192.0.2.1`, `2001:db8::1`, and the forms with a port some proxies
/// write: `192.0.2.1:4711`, `[2001:db8::1]:4711`.
fn xff_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches('"');
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
                .map(canonical)
        })
}

/// One element of RFC 7239 `Forwarded` (`for=192.0.2.60;proto=http;by=…`):
/// the node in its `for` parameter. An element without `for` names no
/// client; `for=unknown` and obfuscated identifiers (`_hidden`) are no
/// address.
fn forwarded_hop(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        // The node: `"[2001:db8:cafe::17]:4711"`, `192.0.2.43`, quoted or not.
        xff_hop(value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn proxies(header: ClientIpHeader) -> Proxies {
        let trusted: Vec<Cidr> = ["127.0.0.1", "10.0.0.0/8", "2001:db8:1::/48"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        Proxies::new(&trusted, header)
    }

    fn client(p: &Proxies, peer: &str, h: &[(&str, &str)]) -> String {
        p.client(peer.parse().unwrap(), &headers(h)).ip.to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(ClientIpHeader::XForwardedFor);
        let forged = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-real-ip", "198.51.100.8"),
        ];
        assert_eq!(client(&p, "203.0.113.5:1234", &forged), "203.0.113.5");
        let none = Proxies::new(&[], ClientIpHeader::XForwardedFor);
        assert_eq!(client(&none, "127.0.0.1:1", &forged), "127.0.0.1");
    }

    #[test]
    fn x_forwarded_for_gives_the_right_most_untrusted_hop() {
        let p = proxies(ClientIpHeader::XForwardedFor);
        // The client forged the left-most entry; nginx appended the real one.
        let h = [("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.1.1.1")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "203.0.113.9");
        // Several header lines are one list.
        let h = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "203.0.113.9:5555"),
        ];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "203.0.113.9");
        // Only proxies: the left-most of them.
        let h = [("x-forwarded-for", "10.0.0.2, 10.0.0.3")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "10.0.0.2");
        // Nothing said: the peer.
        assert_eq!(client(&p, "127.0.0.1:9", &[]), "127.0.0.1");
        // Garbage before the proxy's own hop ends the walk at that hop.
        let h = [("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.3")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "10.0.0.3");
        // IPv6, with and without brackets and ports; v4-mapped is v4.
        let h = [("x-forwarded-for", "[2001:db8:2::5]:80, 2001:db8:1::1")];
        assert_eq!(client(&p, "[2001:db8:1::9]:4", &h), "2001:db8:2::5");
        let h = [("x-forwarded-for", "::ffff:203.0.113.4")];
        assert_eq!(client(&p, "[::ffff:127.0.0.1]:4", &h), "203.0.113.4");
    }

    #[test]
    fn a_long_forged_list_is_read_from_the_right_no_further_than_needed() {
        let p = proxies(ClientIpHeader::XForwardedFor);
        let forged = vec!["198.51.100.7"; 5000].join(", ");
        let h = [
            ("x-forwarded-for", forged.as_str()),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "203.0.113.9");
        let proxies_only = vec!["10.0.0.1"; 100].join(",");
        let h = [("x-forwarded-for", proxies_only.as_str())];
        assert_eq!(
            client(&p, "127.0.0.1:9", &h),
            "10.0.0.1",
            "stops after {MAX_HOPS}"
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let p = proxies(ClientIpHeader::XForwardedFor);
        let h = [
            ("forwarded", "for=198.51.100.7"),
            ("x-real-ip", "198.51.100.8"),
        ];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "127.0.0.1");
        let p = proxies(ClientIpHeader::XRealIp);
        let h = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-real-ip", "203.0.113.9"),
        ];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "203.0.113.9");
    }

    #[test]
    fn forwarded_follows_rfc_7239() {
        let p = proxies(ClientIpHeader::Forwarded);
        let h = [(
            "forwarded",
            "for=198.51.100.7, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.5;by=10.0.0.6",
        )];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "2001:db8:cafe::17");
        let h = [("forwarded", "for=192.0.2.43:8080;proto=http")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "192.0.2.43");
        let h = [("forwarded", "for=203.0.113.1, for=unknown")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "127.0.0.1");
        let h = [("forwarded", "for=_hidden, for=10.0.0.5")];
        assert_eq!(client(&p, "127.0.0.1:9", &h), "10.0.0.5");
    }
}
