//! Connections kept open between requests: one pool per backend, shared by
//! all its calls and instances, so a sync that makes thousands of requests
//! pays the TCP and TLS handshakes once per connection instead of once per
//! request.
//!
//! A connection is keyed by what was *checked* before it was made: scheme,
//! host (also the TLS server name), port and the resolved address the
//! policy approved. A request reuses a connection only when its own checks
//! (allowlist, requested hosts, address class after a fresh lookup) have
//! passed and led to the same key, so the pool never lets a request skip a
//! check, never serves one name with another's connection, and never
//! follows a name to an address it no longer resolves to. A pool serves
//! one backend only, never another.
//!
//! HTTP/1.1 connections serve one request at a time: taken out while in
//! use, put back when the response body has been read to its end (a body
//! dropped early closes its connection). HTTP/2 connections (negotiated by
//! ALPN) are shared: every request clones a handle and they multiplex.
//! Kept connections are bounded (`max_idle_connections`, the oldest closed
//! first) and closed after `idle_timeout` unused.
//!
//! A node keeps its backends' pools in [`Pools`], so that resolving a
//! backend again (a reload, a connector installed) keeps its connections
//! as long as what they were made under is the same: the TLS trust and
//! client certificate (the files' contents, not only their names) and the
//! pool's own settings. Anything else a request depends on (allowlist,
//! address checks, credentials) is checked per request before the pool.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use tokio::time::Instant;

use super::allowlist::{Host, Scheme};

/// What a connection was checked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub scheme: Scheme,
    /// The host as requested: the `Host`/`:authority` sent and the TLS
    /// server name verified.
    pub host: Host,
    pub port: u16,
    /// The address the lookup returned and the policy approved.
    pub addr: IpAddr,
}

/// An open connection's request handle.
pub(super) enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }
    }

    /// Wait until it can take a request; false if it has closed (or does
    /// not become ready soon, which for a kept connection means it is no
    /// good).
    async fn ready(&mut self) -> bool {
        const WAIT: Duration = Duration::from_secs(1);
        let ready = match self {
            Conn::H1(s) => tokio::time::timeout(WAIT, s.ready()).await,
            Conn::H2(s) => tokio::time::timeout(WAIT, s.ready()).await,
        };
        matches!(ready, Ok(Ok(())))
    }
}

/// How a backend keeps connections (from its `egress` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PoolSettings {
    pub enabled: bool,
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

/// What the pool has done, for metrics, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened (each a TCP connect, and a TLS handshake for
    /// `https`).
    pub opened: u64,
    /// Requests sent on a connection an earlier request had opened.
    pub reused: u64,
    /// Connections kept open now.
    pub idle: usize,
}

struct Kept {
    key: Key,
    conn: Conn,
    since: Instant,
}

/// One backend's kept connections.
pub struct Pool {
    settings: PoolSettings,
    /// The backend's name, for `junction_outbound_connections_total`
    /// (none for a policy that is not a configured backend's).
    backend: Option<Arc<str>>,
    kept: Mutex<Vec<Kept>>,
    opened: AtomicU64,
    reused: AtomicU64,
    reaping: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pool {
    pub(super) fn new(settings: PoolSettings, backend: Option<&str>) -> Arc<Pool> {
        Arc::new(Pool {
            settings,
            backend: backend.map(Arc::from),
            kept: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            reaping: AtomicBool::new(false),
        })
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            opened: self.opened.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            idle: self.lock().len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop what has closed or sat unused past the idle timeout.
    fn prune(&self, kept: &mut Vec<Kept>, now: Instant) {
        let timeout = self.settings.idle_timeout;
        kept.retain(|k| !k.conn.is_closed() && now.duration_since(k.since) < timeout);
    }

    /// A ready connection for one of `keys` (the checked addresses, in the
    /// order they would be connected to), if one is kept.
    pub(super) async fn acquire(&self, keys: &[Key]) -> Option<(Key, Conn)> {
        if !self.settings.enabled {
            return None;
        }
        loop {
            let (key, mut conn) = {
                let mut kept = self.lock();
                self.prune(&mut kept, Instant::now());
                let i = kept.iter().position(|k| keys.contains(&k.key))?;
                let entry = &mut kept[i];
                match &entry.conn {
                    // Shared: the kept handle stays for other requests.
                    Conn::H2(s) => {
                        let shared = Conn::H2(s.clone());
                        entry.since = Instant::now();
                        (entry.key.clone(), shared)
                    }
                    Conn::H1(_) => {
                        let k = kept.swap_remove(i);
                        (k.key, k.conn)
                    }
                }
            };
            if conn.ready().await {
                self.reused.fetch_add(1, Ordering::Relaxed);
                self.count(true);
                return Some((key, conn));
            }
            // Closed under us (the server's idle timeout, a reset): forget
            // it and look again.
            if let Conn::H2(_) = conn {
                self.lock()
                    .retain(|k| !(k.key == key && matches!(k.conn, Conn::H2(_))));
            }
        }
    }

    /// Count a connection just opened; an HTTP/2 one is kept for sharing
    /// straight away.
    pub(super) fn opened(self: &Arc<Self>, key: &Key, conn: &Conn) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.count(false);
        if let Conn::H2(s) = conn {
            self.keep(key.clone(), Conn::H2(s.clone()));
        }
    }

    fn count(&self, reused: bool) {
        if let Some(backend) = &self.backend {
            crate::metrics::global().connection(backend, reused);
        }
    }

    /// An HTTP/1.1 connection whose exchange finished cleanly, back for the
    /// next request.
    pub(super) fn release(self: &Arc<Self>, key: Key, conn: Conn) {
        if let Conn::H1(_) = conn {
            self.keep(key, conn);
        }
    }

    fn keep(self: &Arc<Self>, key: Key, conn: Conn) {
        if !self.settings.enabled || self.settings.max_idle == 0 || conn.is_closed() {
            return;
        }
        let now = Instant::now();
        {
            let mut kept = self.lock();
            self.prune(&mut kept, now);
            while kept.len() >= self.settings.max_idle {
                // The least recently used goes (closing it: its handle is
                // the last one, or in-flight HTTP/2 streams finish first).
                let Some(oldest) = (0..kept.len()).min_by_key(|&i| kept[i].since) else {
                    break;
                };
                kept.swap_remove(oldest);
            }
            kept.push(Kept {
                key,
                conn,
                since: now,
            });
        }
        self.start_reaping();
    }

    /// Close idle connections on time even when no request comes: one task
    /// per pool, ending with it.
    fn start_reaping(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaping.store(false, Ordering::Relaxed);
            return;
        };
        let weak: Weak<Pool> = Arc::downgrade(self);
        let every = (self.settings.idle_timeout / 2).max(Duration::from_millis(100));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = weak.upgrade() else { return };
                let mut kept = pool.lock();
                pool.prune(&mut kept, Instant::now());
            }
        });
    }
}

/// A node's pools, one per backend name and connection fingerprint
/// (weakly held: a pool lives as long as a policy uses it).
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<std::collections::HashMap<String, (u64, Weak<Pool>)>>,
}

impl Pools {
    /// The pool of `backend` for connections made under `fingerprint`:
    /// the one in use if it matches, else a new one (which replaces it).
    pub(super) fn get(&self, backend: &str, fingerprint: u64, settings: PoolSettings) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|_, (_, pool)| pool.strong_count() > 0);
        if let Some((known, pool)) = pools.get(backend)
            && *known == fingerprint
            && let Some(pool) = pool.upgrade()
        {
            return pool;
        }
        let pool = Pool::new(settings, Some(backend));
        pools.insert(backend.to_string(), (fingerprint, Arc::downgrade(&pool)));
        pool
    }
}
