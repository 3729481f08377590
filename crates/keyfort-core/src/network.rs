//! Network rules of a vault (ARM `networkAcls`) and private endpoints.
//!
//! The client address is the TCP peer, or, only when the peer is a trusted
//! proxy, the right-most `X-Forwarded-For` hop that is not itself a trusted
//! proxy (so a client cannot spoof its address by sending the header).
//! Requests on a private endpoint reach only the vaults attached to it and
//! are not subject to the IP rules; `publicNetworkAccess: Disabled` makes a
//! vault answer only on its private endpoints.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::Vault;
use crate::{Error, Result};

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Debug, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Server-wide network settings.
#[derive(Clone, Debug, Default)]
pub struct NetworkSettings {
    pub trusted_proxies: Vec<Cidr>,
    /// Named sets of ranges that `virtualNetworkRules` refer to.
    pub virtual_networks: HashMap<String, Vec<Cidr>>,
}

/// The listener a request arrived on.
#[derive(Clone, Debug)]
pub enum Listener {
    Public,
    Private { name: String, vaults: Vec<String> },
}

impl NetworkSettings {
    /// The client's address as the rules see it. From a trusted proxy, the
    /// right-most hop (over every `X-Forwarded-For` line) that is not itself a
    /// trusted proxy; when that cannot be told (no header, a hop that does
    /// not parse), the unspecified address `::`, which no allow rule names:
    /// in doubt, deny.
    pub fn client_address(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.to_canonical();
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let unknown = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        let mut hops = Vec::new();
        for hop in forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            match parse_hop(hop) {
                Some(ip) => hops.push(ip.to_canonical()),
                None => return unknown,
            }
        }
        hops.iter()
            .rev()
            .copied()
            .find(|h| !trusted(*h))
            .unwrap_or(unknown)
    }
}

/// One `X-Forwarded-For` hop: an address, optionally with a port
/// (`1.2.3.4:80`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (addr, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Parsed `networkAcls`.
#[derive(Debug, Default)]
pub struct Acls {
    pub deny_by_default: bool,
    pub ip_rules: Vec<Cidr>,
    pub virtual_networks: Vec<String>,
}

/// The virtual network a rule id names: a bare name, or the
/// `virtualNetworks/{name}` segment of an ARM id.
fn vnet_name(id: &str) -> String {
    let segs: Vec<&str> = id.split('/').collect();
    segs.windows(2)
        .find(|w| w[0].eq_ignore_ascii_case("virtualNetworks"))
        .map(|w| w[1].to_owned())
        .unwrap_or_else(|| id.to_owned())
}

/// Parses and checks ARM `networkAcls`.
pub fn parse_acls(v: &serde_json::Value) -> Result<Acls> {
    let bad = |m: String| Error::bad(format!("networkAcls: {m}"));
    let deny_by_default = match v
        .get("defaultAction")
        .and_then(|d| d.as_str())
        .unwrap_or("Allow")
    {
        a if a.eq_ignore_ascii_case("Allow") => false,
        d if d.eq_ignore_ascii_case("Deny") => true,
        other => {
            return Err(bad(format!(
                "defaultAction must be Allow or Deny, not '{}'",
                crate::names::printable(other)
            )));
        }
    };
    let mut ip_rules = Vec::new();
    for r in v
        .get("ipRules")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let value = r.get("value").and_then(|x| x.as_str()).unwrap_or_default();
        ip_rules.push(Cidr::parse(value).ok_or_else(|| {
            bad(format!(
                "'{}' is not an IP address or CIDR range",
                crate::names::printable(value)
            ))
        })?);
    }
    let virtual_networks = v
        .get("virtualNetworkRules")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("id").and_then(|x| x.as_str()))
        .map(vnet_name)
        .collect();
    Ok(Acls {
        deny_by_default,
        ip_rules,
        virtual_networks,
    })
}

/// Decides whether a request from `client` on `listener` may reach `vault`.
pub fn check(
    vault: &Vault,
    client: IpAddr,
    listener: &Listener,
    settings: &NetworkSettings,
) -> Result<()> {
    match listener {
        Listener::Private { name, vaults } => {
            if vaults.iter().any(|v| v.eq_ignore_ascii_case(&vault.name)) {
                return Ok(());
            }
            Err(Error::Denied {
                code: "ForbiddenByConnection",
                message: format!(
                    "Vault '{}' is not attached to private endpoint '{name}'.",
                    vault.name
                ),
            })
        }
        Listener::Public => {
            if vault.public_network_access.eq_ignore_ascii_case("Disabled") {
                return Err(Error::Denied {
                    code: "ForbiddenByConnection",
                    message: format!(
                        "Public network access is disabled for vault '{}' and the request did not come through one of its private endpoints. Client address: {client}",
                        vault.name
                    ),
                });
            }
            let Some(raw) = &vault.network_acls else {
                return Ok(());
            };
            let acls = parse_acls(raw)?;
            let by_ip = acls.ip_rules.iter().any(|c| c.contains(client));
            let by_vnet = acls
                .virtual_networks
                .iter()
                .filter_map(|n| settings.virtual_networks.get(n))
                .flatten()
                .any(|c| c.contains(client));
            if !acls.deny_by_default || by_ip || by_vnet {
                return Ok(());
            }
            Err(Error::Denied {
                code: "ForbiddenByFirewall",
                message: format!(
                    "Client address is not authorized and caller is not a trusted service. Client address: {client}. Add it to the vault's network rules (networkAcls.ipRules) or use a private endpoint."
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_edges() {
        let c = Cidr::parse("10.1.2.0/24").unwrap();
        assert!(c.contains(ip("10.1.2.0")) && c.contains(ip("10.1.2.255")));
        assert!(!c.contains(ip("10.1.3.0")) && !c.contains(ip("10.1.1.255")));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.5")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("nonsense").is_none());
        assert!(
            c.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped addresses are IPv4"
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let s = NetworkSettings {
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..Default::default()
        };
        // Untrusted peer: the header is ignored.
        assert_eq!(
            s.client_address(ip("203.0.113.9"), &["1.1.1.1"]),
            ip("203.0.113.9")
        );
        // Trusted peer: the right-most hop that is not a trusted proxy, over every line.
        assert_eq!(
            s.client_address(ip("10.0.0.5"), &["6.6.6.6, 198.51.100.7, 10.0.0.9"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            s.client_address(ip("10.0.0.5"), &["6.6.6.6", "198.51.100.7:4431"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            s.client_address(ip("10.0.0.5"), &["2001:db8::7"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            s.client_address(ip("10.0.0.5"), &["[2001:db8::8]:443"]),
            ip("2001:db8::8")
        );
        // In doubt, the address no rule allows.
        assert_eq!(s.client_address(ip("10.0.0.5"), &[]), ip("::"));
        assert_eq!(
            s.client_address(ip("10.0.0.5"), &["6.6.6.6, unknown, 10.0.0.9"]),
            ip("::")
        );
    }
}
