//! Which address is the client? The socket's, unless the socket is a configured proxy (the
//! OpenShift router, an ingress): then the right-most address in `X-Forwarded-For` that is not
//! itself a trusted proxy. A client can prepend anything to that header, so nothing left of
//! the first untrusted hop is believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

pub use crate::cidr::Cidr;

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
