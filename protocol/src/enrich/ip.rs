//! IP anonymisation: what of a visitor's address is stored.
//!
//! The design promises that IPs are not stored whole. By default an address keeps its
//! network part only (an IPv4 /24, an IPv6 /48), which still tells a country, a city or
//! an ISP apart for analytics but no longer names one household.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

/// What to store of an IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpPolicy {
    /// Keep the network part: IPv4 to /24, IPv6 to /48.
    #[default]
    Anonymize,
    /// Store no address at all.
    Drop,
    /// Store the address whole (only where the site has a lawful reason to).
    Keep,
}

/// Applies `policy` to `text`; `None` when nothing is to be stored or it is not an address.
pub fn apply(policy: IpPolicy, text: &str) -> Option<String> {
    match policy {
        IpPolicy::Anonymize => anonymize(text),
        IpPolicy::Drop => None,
        IpPolicy::Keep => parse(text).map(|ip| ip.to_string()),
    }
}

/// Zeroes the host part of an address: the last octet of IPv4, all but the first three
/// hextets of IPv6; `None` when `text` is not an address.
pub fn anonymize(text: &str) -> Option<String> {
    let masked = match parse(text)? {
        IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // `::ffff:a.b.c.d` is an IPv4 visitor seen through a dual-stack socket:
            // masking it as IPv6 /48 would keep the whole IPv4 address.
            Some(v4) => IpAddr::V4(mask_v4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    };
    Some(masked.to_string())
}

fn mask_v4(ip: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = ip.octets();
    Ipv4Addr::new(a, b, c, 0)
}

/// Reads a bare address, a bracketed IPv6 literal, or an address with a port.
fn parse(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymises_ipv4_to_slash_24_and_ipv6_to_slash_48() {
        let cases = [
            ("203.0.113.195", "203.0.113.0"),
            ("  10.1.2.3 ", "10.1.2.0"),
            ("203.0.113.195:443", "203.0.113.0"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
            ("[2001:db8:85a3::1]", "2001:db8:85a3::"),
            ("[2001:db8:85a3::1]:8080", "2001:db8:85a3::"),
            ("::1", "::"),
            ("::ffff:198.51.100.7", "198.51.100.0"),
        ];
        for (input, want) in cases {
            assert_eq!(anonymize(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn invalid_addresses_give_none() {
        for bad in [
            "",
            "localhost",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4, 5.6.7.8",
            "2001:db8::g",
            "[1.2.3.4]",
        ] {
            for policy in [IpPolicy::Anonymize, IpPolicy::Drop, IpPolicy::Keep] {
                assert_eq!(apply(policy, bad), None, "{bad} {policy:?}");
            }
        }
    }

    #[test]
    fn policy_decides_what_is_kept() {
        let cases = [
            (IpPolicy::Anonymize, Some("198.51.100.0")),
            (IpPolicy::Drop, None),
            (IpPolicy::Keep, Some("198.51.100.7")),
        ];
        for (policy, want) in cases {
            assert_eq!(apply(policy, "198.51.100.7").as_deref(), want, "{policy:?}");
        }
        assert_eq!(
            apply(IpPolicy::Keep, "2001:DB8::1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(IpPolicy::default(), IpPolicy::Anonymize);
    }

    #[test]
    fn policy_reads_from_json() {
        let cases = [
            ("\"anonymize\"", IpPolicy::Anonymize),
            ("\"drop\"", IpPolicy::Drop),
            ("\"keep\"", IpPolicy::Keep),
        ];
        for (json, want) in cases {
            assert_eq!(serde_json::from_str::<IpPolicy>(json).unwrap(), want);
        }
        assert!(serde_json::from_str::<IpPolicy>("\"hash\"").is_err());
    }
}
