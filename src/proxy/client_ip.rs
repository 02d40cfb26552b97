//! Which address is the client? The socket's, unless the socket is a configured proxy (the
//! OpenShift router, an ingress): then the right-most address in `X-Forwarded-For` that is not
//! itself a trusted proxy. A client can prepend anything to that header, so nothing left of
//! the first untrusted hop is believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// An address range like `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("not an address: {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("bad prefix length in {s:?}"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client's address for `peer`, given the trusted proxy ranges.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let trusted_hop = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusted_hop(peer.ip()) {
        return peer.ip();
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().parse::<IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        // A malformed header proves nothing: fall back to the proxy itself.
        .unwrap_or_default();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted_hop(*ip))
        .unwrap_or(peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(xff: &[&'static str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn cidrs() -> Result<(), String> {
        let c: Cidr = "10.0.0.0/8".parse()?;
        assert!(c.contains("10.1.2.3".parse().map_err(|_| "ip")?));
        assert!(!c.contains("11.0.0.1".parse().map_err(|_| "ip")?));
        assert!(
            c.contains("::ffff:10.0.0.9".parse().map_err(|_| "ip")?),
            "v4-mapped"
        );
        let one: Cidr = "192.168.1.1".parse()?;
        assert!(
            one.contains("192.168.1.1".parse().map_err(|_| "ip")?)
                && !one.contains("192.168.1.2".parse().map_err(|_| "ip")?)
        );
        let v6: Cidr = "fd00::/8".parse()?;
        assert!(v6.contains("fd12::1".parse().map_err(|_| "ip")?));
        let all: Cidr = "0.0.0.0/0".parse()?;
        assert!(all.contains("8.8.8.8".parse().map_err(|_| "ip")?));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() -> Result<(), String> {
        let trusted = vec!["10.0.0.0/8".parse::<Cidr>()?];
        let proxy: SocketAddr = "10.0.0.5:4000".parse().map_err(|_| "addr")?;
        let direct: SocketAddr = "203.0.113.9:4000".parse().map_err(|_| "addr")?;
        let ip = |s: &str| s.parse::<IpAddr>().map_err(|_| "ip".to_owned());
        assert_eq!(
            client_ip(direct, &h(&["1.2.3.4"]), &trusted),
            ip("203.0.113.9")?,
            "not a proxy: header ignored"
        );
        assert_eq!(
            client_ip(proxy, &h(&["198.51.100.7"]), &trusted),
            ip("198.51.100.7")?
        );
        assert_eq!(
            client_ip(proxy, &h(&["6.6.6.6, 198.51.100.7, 10.0.0.2"]), &trusted),
            ip("198.51.100.7")?,
            "spoofed prefix ignored"
        );
        assert_eq!(
            client_ip(proxy, &h(&["6.6.6.6", "198.51.100.7"]), &trusted),
            ip("198.51.100.7")?,
            "several headers"
        );
        assert_eq!(
            client_ip(proxy, &h(&["garbage, 198.51.100.7"]), &trusted),
            ip("10.0.0.5")?
        );
        assert_eq!(client_ip(proxy, &h(&[]), &trusted), ip("10.0.0.5")?);
        assert_eq!(
            client_ip(proxy, &h(&["198.51.100.7"]), &[]),
            ip("10.0.0.5")?,
            "no trusted proxies configured"
        );
        Ok(())
    }
}
