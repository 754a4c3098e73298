//! Name resolution for outbound requests: one lookup per request, whose
//! addresses are the only ones checked and connected to.
//!
//! Every request resolves again, even when a pooled connection to the name
//! is open: a DNS answer that has moved to another address (or to an
//! internal one) is checked like the first, and the pool is keyed by the
//! checked address, so a connection made for the old answer is never used
//! for the new one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use wasmtime_wasi_http::Error;

use super::allowlist::{Host, Target};

/// Where names come from: the system's resolver unless an embedder (or a
/// test) sets its own with [`super::EgressPolicy::with_resolver`].
pub trait Resolve: Send + Sync + 'static {
    fn lookup(&self, name: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup(&self, name: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let name = name.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

pub(super) fn system() -> Arc<dyn Resolve> {
    Arc::new(SystemResolver)
}

/// Resolve once; IPv4-mapped IPv6 answers become IPv4 (so the address
/// checks see one form), duplicates go.
pub(super) async fn resolve(
    resolver: &dyn Resolve,
    target: &Target,
    timeout: Duration,
) -> Result<Vec<IpAddr>, (String, Error)> {
    let name = match &target.host {
        Host::Ip(ip) => return Ok(vec![*ip]),
        Host::Name(name) => name.clone(),
    };
    match tokio::time::timeout(timeout, resolver.lookup(&name, target.port)).await {
        Err(_) => Err((format!("resolving {name} timed out"), Error::DnsTimeout)),
        Ok(Err(e)) => Err((
            format!("resolving {name} failed: {e}"),
            Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            },
        )),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = Vec::with_capacity(addrs.len());
            for ip in addrs {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    ip => ip,
                };
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            if ips.is_empty() {
                return Err((
                    format!("{name} has no addresses"),
                    Error::DestinationNotFound,
                ));
            }
            Ok(ips)
        }
    }
}
