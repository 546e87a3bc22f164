//! IP allow/deny lists per route (`allow`, `deny`): a denied address, or one outside a
//! non-empty allow list, gets 403 `ip_denied`. IPv4-mapped IPv6 addresses count as IPv4.

use std::net::IpAddr;

use ipnet::IpNet;

use super::refused::{refuse, Refused};
use crate::wire::refusal::Refusal;

/// Checks `ip` against the route's lists.
///
/// # Errors
/// 403 `ip_denied` (audit `acl.refused`).
pub fn check(allow: &[IpNet], deny: &[IpNet], ip: IpAddr) -> Result<(), Refused> {
    let ip = ip.to_canonical();
    if deny.iter().any(|n| n.contains(&ip))
        || (!allow.is_empty() && !allow.iter().any(|n| n.contains(&ip)))
    {
        return Err(refuse(
            Refusal::Forbidden("ip_denied"),
            "acl.refused",
            format!("client {ip} not allowed on this route"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn allowed_inside_the_allow_list_and_with_no_lists() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(check(&[], &[], ip).is_ok());
        assert!(check(&nets(&["10.0.0.0/8"]), &[], ip).is_ok());
        // IPv4-mapped IPv6 is judged as the IPv4 address.
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(check(&nets(&["10.0.0.0/8"]), &[], mapped).is_ok());
    }

    #[test]
    fn refused_when_denied_or_outside_the_allow_list() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let r = check(&nets(&["10.0.0.0/8"]), &[], ip).unwrap_err();
        assert_eq!(r.refusal, Refusal::Forbidden("ip_denied"));
        assert_eq!(r.event, "acl.refused");
        assert!(r.reason.contains("192.0.2.7"), "{}", r.reason);
        // Deny wins over allow.
        let r = check(&nets(&["0.0.0.0/0"]), &nets(&["192.0.2.0/24"]), ip);
        assert!(r.is_err());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(check(&[], &nets(&["192.0.2.0/24"]), mapped).is_err());
    }
}
