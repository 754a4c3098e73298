//! The operator's allowlist of outbound targets and the matcher that checks
//! every request against it (the egress capability's, re-exported there).
//! A module of its own, needing nothing from the runtime, because a
//! manifest's declared hosts are validated with it too (`model`), and the
//! model must not depend on the capabilities.
//!
//! Entries are `scheme://host[:port]`: `host` is a DNS name, `*.name` (any
//! subdomain, not `name` itself), an IPv4 address or a bracketed IPv6
//! address; `port` is a number or `*`, and defaults to the scheme's port.
//! Request targets are normalised the same way before matching (case,
//! trailing dot, default port, IPv4-mapped IPv6), and anything ambiguous
//! (userinfo, percent-encoding, an empty host) is refused outright, so the
//! host that was checked is the only host that can be reached.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// A normalised host: a lowercase DNS name without trailing dot, or an IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Where a request goes, after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl Target {
    /// The `Host` header value for this target (port only when not default).
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(Host),
    /// `*.suffix`: matches names ending in `.suffix`.
    Subdomains(String),
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    text: String,
    scheme: Scheme,
    host: HostPattern,
    /// `None` means any port (`:*`).
    port: Option<u16>,
}

impl AllowRule {
    /// Parse an entry such as `https://*.example.com` or `http://[::1]:8080`.
    pub fn parse(entry: &str) -> Result<AllowRule, AllowlistError> {
        let bad = |reason: &str| AllowlistError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port]"))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| bad("scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("an entry names a host, not a path"));
        }
        let (host_text, port_text) = split_host_port(rest).map_err(|r| bad(&r))?;
        let port = match port_text {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(p) => Some(parse_port(p).map_err(|r| bad(&r))?),
        };
        let host = if let Some(suffix) = host_text.strip_prefix("*.") {
            match normalize_host(suffix).map_err(|r| bad(&r))? {
                Host::Name(name) if name.contains('.') || name == "localhost" => {
                    HostPattern::Subdomains(name)
                }
                Host::Name(_) => {
                    return Err(bad("a wildcard needs a domain with a dot: *.example.com"));
                }
                Host::Ip(_) => return Err(bad("a wildcard cannot cover an IP address")),
            }
        } else if host_text.contains('*') {
            return Err(bad(
                "a wildcard is only allowed as the leading label: *.example.com",
            ));
        } else {
            HostPattern::Exact(normalize_host(host_text).map_err(|r| bad(&r))?)
        };
        Ok(AllowRule {
            text: entry.to_string(),
            scheme,
            host,
            port,
        })
    }

    pub fn matches(&self, target: &Target) -> bool {
        if self.scheme != target.scheme {
            return false;
        }
        if let Some(port) = self.port
            && port != target.port
        {
            return false;
        }
        match (&self.host, &target.host) {
            (HostPattern::Exact(h), t) => h == t,
            (HostPattern::Subdomains(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Subdomains(_), Host::Ip(_)) => false,
        }
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A bad allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowlist entry {entry:?} is invalid: {reason}")]
pub struct AllowlistError {
    pub entry: String,
    pub reason: String,
}

/// A set of entries; empty denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

impl Allowlist {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allowlist, AllowlistError> {
        let rules = entries
            .iter()
            .map(|e| AllowRule::parse(e.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist { rules })
    }

    /// The entry that allows `target`, if any.
    pub fn find(&self, target: &Target) -> Option<&AllowRule> {
        self.rules.iter().find(|r| r.matches(target))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &AllowRule> {
        self.rules.iter()
    }
}

/// Why a request's target could not even be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request target {uri:?} is refused: {reason}")]
pub struct TargetError {
    pub uri: String,
    pub reason: String,
}

/// Normalise the target of an outgoing request URI.
pub fn parse_target(uri: &http::Uri) -> Result<Target, TargetError> {
    let bad = |reason: &str| TargetError {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    let scheme = uri
        .scheme_str()
        .and_then(Scheme::parse)
        .ok_or_else(|| bad("scheme must be http or https"))?;
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.as_str();
    if authority.contains('@') {
        return Err(bad("userinfo (user@host) is not allowed in outbound URLs"));
    }
    let (host_text, port_text) = split_host_port(authority).map_err(|r| bad(&r))?;
    let port = match port_text {
        None => scheme.default_port(),
        Some(p) => parse_port(p).map_err(|r| bad(&r))?,
    };
    let host = normalize_host(host_text).map_err(|r| bad(&r))?;
    Ok(Target { scheme, host, port })
}

/// Parse `host:port` (an IPv6 host in brackets), normalised like a target.
pub fn parse_host_port(entry: &str) -> Result<(Host, u16), AllowlistError> {
    let bad = |reason: String| AllowlistError {
        entry: entry.to_string(),
        reason,
    };
    let (host, port) = split_host_port(entry).map_err(bad)?;
    let port = port.ok_or_else(|| bad("expected host:port".to_string()))?;
    Ok((
        normalize_host(host).map_err(bad)?,
        parse_port(port).map_err(bad)?,
    ))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {p:?} is not a number from 1 to 65535")),
        Ok(n) => Ok(n),
    }
}

/// Split `host[:port]`, where an IPv6 host is bracketed.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed [ in IPv6 address")?;
        let host = &s[..end + 2];
        return match &rest[end + 1..] {
            "" => Ok((host, None)),
            tail => tail
                .strip_prefix(':')
                .filter(|p| !p.is_empty())
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("unexpected {tail:?} after IPv6 address")),
        };
    }
    match s.rsplit_once(':') {
        Some((_, "")) => Err("empty port".to_string()),
        Some((h, p)) if !h.contains(':') => Ok((h, Some(p))),
        Some(_) => Err("an IPv6 address must be in brackets: [::1]".to_string()),
        None => Ok((s, None)),
    }
}

/// Lowercase, strip one trailing dot, parse IP literals (unwrapping
/// IPv4-mapped IPv6), and refuse anything a resolver could read two ways.
fn normalize_host(raw: &str) -> Result<Host, String> {
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("{raw:?} is not an IPv6 address"))?;
        return Ok(Host::Ip(match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(ip),
        }));
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty host".to_string());
    }
    if let Ok(ip) = name.parse::<std::net::Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    // Forms such as `0x7f.1`, `2130706433` or `127.1` are IPv4 to some
    // resolvers and names to others; refuse rather than guess.
    if name
        .split('.')
        .next_back()
        .is_some_and(|label| label.chars().all(|c| c.is_ascii_digit()) || label.starts_with("0x"))
    {
        return Err(format!(
            "{raw:?} looks like a numeric address in a non-standard form; use a dotted-quad IPv4 or a name"
        ));
    }
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !valid || name.len() > 253 {
        return Err(format!("{raw:?} is not a valid host name"));
    }
    Ok(Host::Name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URI `http` itself rejects never reaches the matcher: refused too.
    fn target(uri: &str) -> Result<Target, TargetError> {
        let parsed = uri.parse().map_err(|e| TargetError {
            uri: uri.to_string(),
            reason: format!("{e}"),
        })?;
        parse_target(&parsed)
    }

    fn allowed(entries: &[&str], uri: &str) -> bool {
        let list = Allowlist::parse(entries).unwrap();
        target(uri)
            .map(|t| list.find(&t).is_some())
            .unwrap_or(false)
    }

    #[test]
    fn exact_hosts_match_with_case_trailing_dot_and_default_port() {
        let entries = ["https://shop.example.com"];
        assert!(allowed(&entries, "https://shop.example.com/rest"));
        assert!(allowed(&entries, "https://SHOP.Example.COM/rest"));
        assert!(allowed(&entries, "https://shop.example.com./rest"));
        assert!(allowed(&entries, "https://shop.example.com:443/rest"));
        assert!(!allowed(&entries, "https://shop.example.com:8443/rest"));
        assert!(!allowed(&entries, "http://shop.example.com/rest"));
        assert!(!allowed(&entries, "https://evil.com/shop.example.com"));
        assert!(!allowed(&entries, "https://shop.example.com.evil.com/"));
        assert!(!allowed(&entries, "https://xshop.example.com/"));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let entries = ["https://*.example.com"];
        assert!(allowed(&entries, "https://a.example.com/"));
        assert!(allowed(&entries, "https://a.b.example.com/"));
        assert!(!allowed(&entries, "https://example.com/"));
        assert!(!allowed(&entries, "https://badexample.com/"));
        assert!(!allowed(&entries, "https://a.example.com.evil/"));
        assert!(allowed(&["http://h.example:*"], "http://h.example:1234/"));
    }

    #[test]
    fn ip_literals_are_normalised() {
        assert!(allowed(&["http://[::1]:8080"], "http://[0:0::1]:8080/"));
        assert!(allowed(
            &["http://127.0.0.1:8080"],
            "http://[::ffff:127.0.0.1]:8080/"
        ));
        assert!(allowed(
            &["http://[::ffff:7f00:1]:8080"],
            "http://127.0.0.1:8080/"
        ));
        assert!(!allowed(
            &["http://127.0.0.1:8080"],
            "http://127.0.0.2:8080/"
        ));
    }

    #[test]
    fn ambiguous_targets_are_refused() {
        for uri in [
            "http://user@shop.example.com/",
            "http://shop.example.com@evil.com/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://shop%2eexample.com/",
            "ftp://shop.example.com/",
        ] {
            assert!(target(uri).is_err(), "{uri} should be refused");
        }
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(!allowed(&[], "https://shop.example.com/"));
    }

    #[test]
    fn bad_entries_name_the_problem() {
        for (entry, needle) in [
            ("shop.example.com", "scheme://"),
            ("gopher://x.com", "http or https"),
            ("https://x.com/path", "not a path"),
            ("https://a.*.com", "leading label"),
            ("https://*.com", "dot"),
            ("https://x.com:0", "1 to 65535"),
            ("https://::1", "brackets"),
            ("https://*.10.0.0.1", "IP address"),
        ] {
            let err = AllowRule::parse(entry).unwrap_err().to_string();
            assert!(err.contains(needle), "{entry}: {err}");
        }
    }

    #[test]
    fn authority_omits_default_port() {
        assert_eq!(
            target("https://a.example.com:443/").unwrap().authority(),
            "a.example.com"
        );
        assert_eq!(target("http://[::1]:81/").unwrap().authority(), "[::1]:81");
    }
}
