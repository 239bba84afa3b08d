//! Value types of the `[server]` edge: trusted proxy networks, the
//! connection cap, and which header a proxy names the client in.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one
/// address (`127.0.0.1` is `127.0.0.1/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(net) = t.parse::<IpNet>() {
            // `10.1.2.3/8` names the network 10.0.0.0/8; keep only that.
            return Ok(Cidr(net.trunc()));
        }
        t.parse::<IpAddr>()
            .map(|ip| Cidr(IpNet::from(canonical(ip))))
            .map_err(|_| {
                format!("`{s}` is not a network like `10.0.0.0/8` or an address like `127.0.0.1`")
            })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Cidr::from_str(&s)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:192.0.2.1`, as a dual-stack
/// socket reports IPv4 peers) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `server.max_connections`: `"auto"` (sized from the open-file limit at
/// start) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "LimitRepr")]
pub enum ConnectionLimit {
    Auto,
    Fixed(u32),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LimitRepr {
    Number(i64),
    Text(String),
}

impl TryFrom<LimitRepr> for ConnectionLimit {
    type Error = String;
    fn try_from(r: LimitRepr) -> Result<Self, String> {
        let bad = |v: &dyn std::fmt::Display| {
            format!("`{v}` is neither \"auto\" nor a number of connections from 1 to 1000000")
        };
        match r {
            LimitRepr::Text(s) if s.trim() == "auto" => Ok(ConnectionLimit::Auto),
            LimitRepr::Text(s) => {
                s.trim().parse::<i64>().map_err(|_| bad(&s)).and_then(|n| {
                    ConnectionLimit::try_from(LimitRepr::Number(n)).map_err(|_| bad(&s))
                })
            }
            LimitRepr::Number(n) if (1..=1_000_000).contains(&n) => {
                Ok(ConnectionLimit::Fixed(n as u32))
            }
            LimitRepr::Number(n) => Err(bad(&n)),
        }
    }
}

impl ConnectionLimit {
    /// Connections to serve at once, given the soft open-file limit in
    /// force: `Auto` leaves a reserve for what else herald opens (content
    /// files, the database, SMTP and WebSub connections) and stops at a
    /// number whose buffers fit comfortably in memory.
    pub fn resolve(self, open_files: u64) -> u32 {
        match self {
            ConnectionLimit::Fixed(n) => n,
            ConnectionLimit::Auto => {
                let reserve = (open_files / 4).min(256);
                open_files.saturating_sub(reserve).clamp(16, 16_384) as u32
            }
        }
    }
}

/// Which header a trusted proxy names the client in. Only that one is
/// read: a proxy passes the others on as the client sent them, so
/// reading them too would let a client choose its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, …`: the right-most address that is
    /// not a trusted proxy.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`: likewise, right to left.
    Forwarded,
    /// `X-Real-IP: client`, one address set by the proxy.
    XRealIp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses_parse() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::9".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.org".parse::<Cidr>().is_err());
    }

    #[test]
    fn connection_limits_are_auto_or_a_sane_number() {
        let parse = |v: &str| {
            toml::from_str::<toml::Table>(&format!("v = {v}")).unwrap()["v"]
                .clone()
                .try_into::<ConnectionLimit>()
        };
        assert_eq!(parse("\"auto\"").unwrap(), ConnectionLimit::Auto);
        assert_eq!(parse("500").unwrap(), ConnectionLimit::Fixed(500));
        assert_eq!(parse("\"500\"").unwrap(), ConnectionLimit::Fixed(500));
        assert!(parse("0").is_err() && parse("-1").is_err() && parse("\"lots\"").is_err());
        assert_eq!(ConnectionLimit::Auto.resolve(1024), 768);
        assert_eq!(ConnectionLimit::Auto.resolve(1_048_576), 16_384);
        assert_eq!(ConnectionLimit::Auto.resolve(20), 16);
        assert_eq!(ConnectionLimit::Fixed(7).resolve(1024), 7);
    }
}
