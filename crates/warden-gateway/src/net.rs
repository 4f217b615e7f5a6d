//! Where a request comes from: the TCP peer, or — only when the peer is a configured trusted
//! proxy — the nearest untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;

use ipnet::IpNet;

/// Walks `X-Forwarded-For` from the right, past trusted proxies: the header's lines in the
/// order they arrived, each a list (RFC 9110 §5.3: the lines are one list, joined in order),
/// so a proxy that appends a line of its own is read before the line the client wrote. An
/// entry that is not an address, or a line that is not text, ends the walk, since everything
/// left of it is the client's to forge.
pub fn client_ip<'a, L>(peer: IpAddr, forwarded_for: L, trusted: &[IpNet]) -> IpAddr
where
    L: IntoIterator<Item = Option<&'a str>>,
    L::IntoIter: DoubleEndedIterator,
{
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for line in forwarded_for.into_iter().rev() {
        let Some(line) = line else {
            return client;
        };
        for hop in line.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(&ip) {
                        return client;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

/// The `X-Forwarded-For` lines of `headers`, in order, `None` for a line that is not text.
pub fn forwarded_for(
    headers: &hyper::HeaderMap,
) -> impl DoubleEndedIterator<Item = Option<&str>> + '_ {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
}

/// Parses `allowed_ips` entries (CIDR or single address); `None` if any is invalid, so a
/// malformed restriction never turns into no restriction.
pub fn parse_networks(entries: &[String]) -> Option<Vec<IpNet>> {
    entries
        .iter()
        .map(|e| {
            e.parse::<IpNet>()
                .ok()
                .or_else(|| e.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// Whether `host` (a Host header) names a listener bound to `bound`: its address, or
/// `localhost`, with its port (80 when the Host has none); any name with its port when it
/// listens on every address, since it cannot know its names then.
pub fn names_listener(host: &str, bound: std::net::SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !host.ends_with(']') => match port.parse::<u16>() {
            Ok(port) => (name, port),
            Err(_) => return false,
        },
        _ => (host, 80),
    };
    port == bound.port()
        && (std::net::SocketAddr::new(bound.ip(), port).to_string() == format!("{name}:{port}")
            || name.eq_ignore_ascii_case("localhost")
            || bound.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
        let one = |line: &'static str| [Some(line)];
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("192.0.2.9"), one("1.2.3.4"), &trusted),
            ip("192.0.2.9")
        );
        // A trusted peer: the rightmost untrusted hop is the client.
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                one("6.6.6.6, 203.0.113.7, 10.0.0.2"),
                &trusted
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), one("garbage, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), [], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_lines_are_one_list_in_order() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
        // The client forged the first line; the trusted proxy appended the second.
        let lines = [Some("203.0.113.7"), Some("198.51.100.9")];
        assert_eq!(
            client_ip(ip("10.0.0.1"), lines, &trusted),
            ip("198.51.100.9")
        );
        // Trusted hops are walked across lines.
        let lines = [Some("198.51.100.9, 10.0.0.5"), Some("10.0.0.4")];
        assert_eq!(
            client_ip(ip("10.0.0.1"), lines, &trusted),
            ip("198.51.100.9")
        );
        // A line that is not text ends the walk where it stands.
        let lines = [Some("203.0.113.7"), None, Some("10.0.0.4")];
        assert_eq!(client_ip(ip("10.0.0.1"), lines, &trusted), ip("10.0.0.4"));
    }

    #[test]
    fn networks_parse_strictly() {
        assert!(parse_networks(&["10.0.0.0/8".into(), "::1".into()]).is_some());
        assert!(parse_networks(&["10.0.0.0/33".into()]).is_none());
    }

    #[test]
    fn a_host_names_the_listener_only_by_its_address_or_localhost() {
        let at = |a: &str| {
            a.parse::<std::net::SocketAddr>()
                .unwrap_or_else(|e| unreachable!("{e}"))
        };
        let local = at("127.0.0.1:8443");
        assert!(names_listener("127.0.0.1:8443", local));
        assert!(names_listener("localhost:8443", local));
        assert!(names_listener("LOCALHOST:8443", local));
        assert!(!names_listener("api.other.example:8443", local));
        assert!(!names_listener("127.0.0.1:9000", local));
        assert!(!names_listener("127.0.0.1", local), "no port is port 80");
        assert!(!names_listener("127.0.0.1:x", local));
        assert!(!names_listener("", local));
        assert!(names_listener("127.0.0.1", at("127.0.0.1:80")));
        let v6 = at("[::1]:8443");
        assert!(names_listener("[::1]:8443", v6));
        assert!(!names_listener("[::1]", v6));
        assert!(!names_listener("[::2]:8443", v6));
        // Listening everywhere, it cannot know its names: any, on its port.
        let any = at("0.0.0.0:8443");
        assert!(names_listener("gw.example:8443", any));
        assert!(!names_listener("gw.example:9000", any));
    }
}
