//! Shared helpers: one host and probe per test binary, call contexts, and a
//! local HTTP server on 127.0.0.1 standing in for a backend.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use junction_runtime::capabilities::egress::{Auth, EgressPolicy, Pools, Resolve, TlsSettings};
use junction_runtime::capabilities::memory::MemoryServices;
use junction_runtime::capabilities::{BackendInfo, CallContext, Services};
use junction_runtime::grants::Grants;
use junction_runtime::{EgressLimits, Host, HostConfig, SandboxLimits, Unit};

pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::new(HostConfig {
            max_instances: 64,
            ..HostConfig::default()
        })
        .expect("host starts")
    })
}

/// The probe, loaded once per test binary. Each test has its own tokio
/// runtime, and a `Unit` works on any of them.
pub fn probe() -> &'static Unit {
    static PROBE: OnceLock<Unit> = OnceLock::new();
    PROBE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(host().load_file(junction_test_artifacts::PROBE.as_ref()))
                .expect("probe loads")
        })
        .join()
        .unwrap()
    })
}

/// Builds a call context for a backend named `test`.
pub struct Ctx {
    pub allow: Vec<String>,
    pub allow_internal: Vec<String>,
    pub auth: Option<Auth>,
    /// Where the credential goes; empty: every exact allowed origin.
    pub auth_origins: Vec<String>,
    pub limits: SandboxLimits,
    pub egress: EgressLimits,
    pub tls: TlsSettings,
    /// Names resolved by the test instead of the system.
    pub resolver: Option<Arc<dyn Resolve>>,
    /// Named (for the connection metrics), with a pool of its own.
    pub pooled_as: Option<String>,
    pub services: Arc<MemoryServices>,
    pub grants: Grants,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            allow: Vec::new(),
            allow_internal: Vec::new(),
            auth: None,
            auth_origins: Vec::new(),
            limits: SandboxLimits {
                deadline: Duration::from_secs(10),
                ..SandboxLimits::default()
            },
            egress: EgressLimits::default(),
            tls: TlsSettings::default(),
            resolver: None,
            pooled_as: None,
            services: Arc::new(MemoryServices::default()),
            grants: Grants::unrestricted("test"),
        }
    }
}

impl Ctx {
    /// Allow the test server, including its loopback address.
    pub fn server(server: &Server) -> Self {
        Ctx {
            allow: vec![server.origin()],
            allow_internal: vec![server.addr.to_string()],
            ..Ctx::default()
        }
    }

    /// A backend-less context with changed sandbox limits.
    pub fn limited(change: impl FnOnce(&mut SandboxLimits)) -> Arc<CallContext> {
        let mut ctx = Ctx::default();
        change(&mut ctx.limits);
        ctx.build()
    }

    pub fn build(&self) -> Arc<CallContext> {
        Arc::new(CallContext {
            backend: BackendInfo {
                name: "test".into(),
                kind: "probe".into(),
                version: "1.2.0".into(),
                base_url: "http://127.0.0.1".into(),
            },
            settings: r#"{"region":"eu"}"#.into(),
            egress: Arc::new(
                EgressPolicy::new(
                    &self.allow,
                    &self.allow_internal,
                    self.auth.as_ref(),
                    self.egress.clone(),
                )
                .and_then(|p| {
                    // The credential goes to the exact allowed origins
                    // unless the test names others.
                    let exact: Vec<&String> = if self.auth_origins.is_empty() {
                        self.allow.iter().filter(|a| !a.contains('*')).collect()
                    } else {
                        self.auth_origins.iter().collect()
                    };
                    p.credential_origins(&exact)
                })
                .and_then(|p| p.tls(&self.tls))
                .map(|p| match &self.resolver {
                    Some(r) => p.with_resolver(r.clone()),
                    None => p,
                })
                .map(|p| match &self.pooled_as {
                    Some(name) => p.pooled_in(&Pools::default(), name),
                    None => p,
                })
                .expect("valid policy"),
            ),
            limits: self.limits.clone(),
            services: Services::from_one(self.services.clone()),
            grants: Arc::new(self.grants.clone()),
        })
    }
}

/// A local backend. Routes:
/// `/ok`, `/slow?ms=N`, `/big?bytes=N` (with content-length),
/// `/stream?bytes=N` (chunked), `/redirect?to=URL`, `/headers` (echoes the
/// request's headers as JSON).
pub struct Server {
    pub addr: SocketAddr,
    /// Most requests seen in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
    /// Headers of the last request, as `name: value` lines.
    pub last_headers: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start() -> Server {
        Server::bind("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn bind(at: SocketAddr) -> Server {
        let listener = tokio::net::TcpListener::bind(at).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let last_headers = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (inf, maxf, last, accepted) = (
            in_flight.clone(),
            max_in_flight.clone(),
            last_headers.clone(),
            connections.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (inf, maxf, last) = (inf.clone(), maxf.clone(), last.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (inf, maxf, last) = (inf.clone(), maxf.clone(), last.clone());
                        async move {
                            let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
                            maxf.fetch_max(now, Ordering::SeqCst);
                            let response = route(req, &last).await;
                            inf.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            max_in_flight,
            last_headers,
            connections,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn route(req: Request<Incoming>, last: &Mutex<Vec<String>>) -> Response<Body> {
    *last.lock().unwrap() = req
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    let full = |s: String| Full::new(Bytes::from(s)).boxed();
    match req.uri().path() {
        "/ok" => Response::new(full("hello".into())),
        "/slow" => {
            let ms: u64 = param(&req, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full("slow".into()))
        }
        "/big" => {
            let n: usize = param(&req, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Response::new(full("x".repeat(n)))
        }
        "/stream" => {
            let n: usize = param(&req, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let chunk = Bytes::from(vec![b'y'; 16 * 1024]);
            let frames = (0..n.div_ceil(16 * 1024))
                .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
            Response::new(StreamBody::new(futures_stream(frames)).boxed())
        }
        "/redirect" => Response::builder()
            .status(302)
            .header("location", param(&req, "to").unwrap_or_default())
            .body(full(String::new()))
            .unwrap(),
        "/headers" => Response::new(full(last.lock().unwrap().join("\n"))),
        _ => Response::builder()
            .status(404)
            .body(full("no route".into()))
            .unwrap(),
    }
}

/// An iterator as a `Stream` without pulling in a futures crate.
fn futures_stream<I: Iterator + Unpin>(iter: I) -> IterStream<I> {
    IterStream(iter)
}

pub struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// The JSON a probe behaviour returned in its record data.
pub fn data(record: &junction_runtime::model::RemoteRecord) -> serde_json::Value {
    serde_json::from_str(&record.data).expect("probe returns JSON")
}
