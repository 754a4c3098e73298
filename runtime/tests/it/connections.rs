//! Outbound connections at internet distance: kept and reused per backend
//! (never across backends or names, never past a check), TLS with the
//! backend's own trust (a private CA, a client certificate), HTTP/2 by
//! ALPN.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use junction_backend_kit::tls::{Authority, TlsRelay};
use junction_runtime::EgressLimits;
use junction_runtime::capabilities::CallContext;
use junction_runtime::capabilities::egress::{Auth, Resolve, Secret, TlsSettings};

use crate::support::{Ctx, Server, data, probe};

/// Names the test answers itself, changeable while running (a DNS
/// record that moves).
#[derive(Default)]
struct Names(Mutex<HashMap<String, Vec<IpAddr>>>);

impl Names {
    /// `shop.test` at 127.0.0.1, where the TLS tests' certificates point.
    fn shop_test() -> Arc<Names> {
        let names = Arc::new(Names::default());
        names.set("shop.test", "127.0.0.1");
        names
    }

    fn set(&self, name: &str, ip: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_string(), vec![ip.parse().unwrap()]);
    }
}

impl Resolve for Names {
    fn lookup(&self, name: &str, _port: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.lock().unwrap().get(name).cloned();
        let name = name.to_string();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::other(format!("no such name {name}")))
        })
    }
}

/// GET `url` in one call; the response body, or the audit's reason.
async fn get(ctx: &Arc<CallContext>, url: &str) -> Result<String, String> {
    let report = probe().read(ctx, "http", url).await;
    let audit = report.audit.clone();
    match report.into_result() {
        Ok(record) => {
            let v = data(&record);
            assert_eq!(v["status"], 200, "{v}");
            Ok(v["body"].as_str().unwrap().to_string())
        }
        Err(e) => Err(audit
            .last()
            .and_then(|a| a.error.clone().or(a.denied.clone()))
            .unwrap_or_else(|| format!("{e:?}"))),
    }
}

fn connections(server: &Server) -> usize {
    server.connections.load(Ordering::SeqCst)
}

#[tokio::test]
async fn kept_connections_serve_a_backends_later_calls_and_never_another_backends() {
    let server = Server::start().await;
    let shop = Ctx {
        pooled_as: Some("pool-metrics-shop".into()),
        ..Ctx::server(&server)
    }
    .build();
    let erp = Ctx::server(&server).build();
    for _ in 0..3 {
        assert_eq!(get(&shop, &server.url("/ok")).await.unwrap(), "hello");
    }
    let stats = shop.egress.pool_stats();
    assert_eq!((stats.opened, stats.reused), (1, 2), "{stats:?}");
    assert_eq!(connections(&server), 1, "three calls, one connection");
    // The operator sees it in /metrics.
    let mut text = String::new();
    junction_runtime::metrics::global().render(&mut text, &|_| Default::default());
    for (kind, n) in [("opened", 1), ("reused", 2)] {
        let line = format!(
            "junction_outbound_connections_total{{backend=\"pool-metrics-shop\",connection=\"{kind}\"}} {n}"
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
    }

    // Another backend to the very same server opens its own.
    get(&erp, &server.url("/ok")).await.unwrap();
    let stats = erp.egress.pool_stats();
    assert_eq!((stats.opened, stats.reused), (1, 0), "{stats:?}");
    assert_eq!(connections(&server), 2);

    // With keep_alive off, every request has a connection of its own.
    let off = Ctx {
        egress: EgressLimits {
            keep_alive: false,
            ..EgressLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    for _ in 0..3 {
        get(&off, &server.url("/ok")).await.unwrap();
    }
    assert_eq!(off.egress.pool_stats().opened, 3);
    assert_eq!(connections(&server), 5);
}

#[tokio::test]
async fn a_moved_dns_answer_gets_a_new_connection_and_another_name_its_own_checks() {
    let first = Server::start().await;
    let port = first.addr.port();
    // The same port on another loopback address: where the name moves.
    let second = Server::bind(SocketAddr::new("127.0.0.2".parse().unwrap(), port)).await;
    let names = Names::shop_test();
    names.set("other.test", "127.0.0.1");
    let ctx = Ctx {
        allow: vec![
            format!("http://shop.test:{port}"),
            format!("http://other.test:{port}"),
        ],
        allow_internal: vec![format!("shop.test:{port}")],
        resolver: Some(names.clone()),
        ..Ctx::default()
    }
    .build();
    let url = |name: &str| format!("http://{name}:{port}/ok");

    get(&ctx, &url("shop.test")).await.unwrap();
    assert_eq!((connections(&first), connections(&second)), (1, 0));

    // The record moves: the next request goes where it now points, on a
    // new connection, although one to the old address is kept.
    names.set("shop.test", "127.0.0.2");
    get(&ctx, &url("shop.test")).await.unwrap();
    assert_eq!((connections(&first), connections(&second)), (1, 1));
    assert_eq!(ctx.egress.pool_stats().reused, 0);

    // A name the operator did not allow to be internal is refused for
    // that address, though a connection to the same address and port is
    // open in the pool.
    let reason = get(&ctx, &url("other.test")).await.unwrap_err();
    assert!(
        reason.contains("other.test resolved to 127.0.0.1 (loopback)"),
        "{reason}"
    );
    assert_eq!(connections(&first), 1, "nothing reached the server");

    // Back to the first answer: its kept connection serves again.
    names.set("shop.test", "127.0.0.1");
    get(&ctx, &url("shop.test")).await.unwrap();
    assert_eq!((connections(&first), connections(&second)), (1, 1));
    assert_eq!(ctx.egress.pool_stats().reused, 1);
}

#[tokio::test]
async fn credentials_go_only_to_their_origin_over_kept_connections() {
    let server = Server::start().await;
    let port = server.addr.port();
    let names = Arc::new(Names::default());
    // Two names for one address and port: one connection each.
    names.set("api.test", "127.0.0.1");
    names.set("cdn.test", "127.0.0.1");
    let ctx = Ctx {
        allow: vec![
            format!("http://api.test:{port}"),
            format!("http://cdn.test:{port}"),
        ],
        allow_internal: vec![format!("api.test:{port}"), format!("cdn.test:{port}")],
        auth: Some(Auth::Bearer {
            token: Secret::new("s3cret"),
        }),
        auth_origins: vec![format!("http://api.test:{port}")],
        resolver: Some(names),
        ..Ctx::default()
    }
    .build();
    for round in 0..2 {
        let api = get(&ctx, &format!("http://api.test:{port}/headers"))
            .await
            .unwrap();
        assert!(api.contains("authorization: Bearer s3cret"), "{api}");
        assert!(api.contains(&format!("host: api.test:{port}")), "{api}");
        let cdn = get(&ctx, &format!("http://cdn.test:{port}/headers"))
            .await
            .unwrap();
        assert!(!cdn.contains("s3cret"), "round {round}: {cdn}");
        assert!(cdn.contains(&format!("host: cdn.test:{port}")), "{cdn}");
    }
    let stats = ctx.egress.pool_stats();
    assert_eq!((stats.opened, stats.reused), (2, 2), "{stats:?}");
    assert_eq!(connections(&server), 2);
}

/// A context reaching `https://shop.test:{port}` (resolved by `names`)
/// with `tls` and `egress`.
fn shop_test(
    port: u16,
    names: &Arc<Names>,
    tls: TlsSettings,
    egress: EgressLimits,
) -> Arc<CallContext> {
    Ctx {
        allow: vec![format!("https://shop.test:{port}")],
        allow_internal: vec![format!("shop.test:{port}")],
        resolver: Some(names.clone()),
        tls,
        egress,
        ..Ctx::default()
    }
    .build()
}

/// A TLS front for `server` with a certificate for `shop.test` from `ca`,
/// and a context that reaches it by that name with `tls`.
struct Tls {
    relay: TlsRelay,
    names: Arc<Names>,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

impl Tls {
    async fn start(
        server: &Server,
        ca: &Authority,
        alpn: &[&[u8]],
        clients: Option<&Authority>,
    ) -> Tls {
        let config = ca.issue(&["shop.test"]).server_config(alpn, clients);
        let relay = TlsRelay::start(server.addr, config).await;
        let names = Names::shop_test();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Tls {
            relay,
            names,
            _dir: dir,
            ca_file,
        }
    }

    fn ctx(&self, tls: TlsSettings, egress: EgressLimits) -> Arc<CallContext> {
        shop_test(self.relay.addr.port(), &self.names, tls, egress)
    }

    fn trusting(&self) -> TlsSettings {
        TlsSettings {
            ca_file: Some(self.ca_file.clone()),
            ..TlsSettings::default()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://shop.test:{}{path}", self.relay.addr.port())
    }
}

#[tokio::test]
async fn tls_with_a_private_ca_works_only_when_the_backend_trusts_it() {
    let server = Server::start().await;
    let ca = Authority::new("Junction test private CA");
    let tls = Tls::start(&server, &ca, &[b"http/1.1"], None).await;
    let counts = tls.relay.counts.clone();

    let untrusting = tls.ctx(TlsSettings::default(), EgressLimits::default());
    let reason = get(&untrusting, &tls.url("/ok")).await.unwrap_err();
    assert!(
        reason.contains("not signed by an authority this backend trusts")
            && reason.contains("tls.ca_file"),
        "{reason}"
    );
    assert_eq!(connections(&server), 0, "nothing reached the backend");

    // Trusted, with connections not kept: the second handshake resumes
    // the first's session.
    let once = tls.ctx(
        tls.trusting(),
        EgressLimits {
            keep_alive: false,
            ..EgressLimits::default()
        },
    );
    for _ in 0..2 {
        assert_eq!(get(&once, &tls.url("/ok")).await.unwrap(), "hello");
    }
    assert_eq!(counts.full.load(Ordering::SeqCst), 1);
    assert_eq!(counts.resumed.load(Ordering::SeqCst), 1);

    // Trusted and kept: three calls, one new connection and no handshake
    // after it.
    let kept = tls.ctx(tls.trusting(), EgressLimits::default());
    let before = counts.handshakes();
    for _ in 0..3 {
        get(&kept, &tls.url("/ok")).await.unwrap();
    }
    assert_eq!(counts.handshakes(), before + 1);

    // The trust stays the backend's own: the first one still refuses.
    let reason = get(&untrusting, &tls.url("/ok")).await.unwrap_err();
    assert!(reason.contains("tls.ca_file"), "{reason}");
}

#[tokio::test]
async fn a_server_asking_for_a_client_certificate_gets_the_configured_one() {
    let server = Server::start().await;
    let ca = Authority::new("Junction test server CA");
    let clients = Authority::new("Junction test client CA");
    let tls = Tls::start(&server, &ca, &[b"http/1.1"], Some(&clients)).await;
    let counts = tls.relay.counts.clone();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // None configured: the failure says which settings give one.
    let without = tls.ctx(tls.trusting(), EgressLimits::default());
    let reason = get(&without, &tls.url("/ok")).await.unwrap_err();
    assert!(reason.contains("tls.client_cert"), "{reason}");

    // One from a CA the server does not accept: refused, named.
    let stranger = ca.issue(&["junction.test"]);
    let wrong = tls.ctx(
        TlsSettings {
            client_cert: Some(write("wrong.pem", &stranger.cert_pem)),
            client_key: Some(write("wrong.key", &stranger.key_pem)),
            ..tls.trusting()
        },
        EgressLimits::default(),
    );
    let reason = get(&wrong, &tls.url("/ok")).await.unwrap_err();
    assert!(reason.contains("client certificate"), "{reason}");
    assert_eq!(counts.with_client_certificate.load(Ordering::SeqCst), 0);
    assert_eq!(connections(&server), 0);

    // The right one.
    let mine = clients.issue(&["junction.test"]);
    let with = tls.ctx(
        TlsSettings {
            client_cert: Some(write("client.pem", &mine.cert_pem)),
            client_key: Some(write("client.key", &mine.key_pem)),
            ..tls.trusting()
        },
        EgressLimits::default(),
    );
    assert_eq!(get(&with, &tls.url("/ok")).await.unwrap(), "hello");
    assert_eq!(counts.with_client_certificate.load(Ordering::SeqCst), 1);
}

/// An HTTPS server that speaks HTTP/2 when the client offers it: answers
/// every request with its HTTP version after `?ms=` milliseconds, and
/// counts connections.
async fn versions_server(ca: &Authority) -> (SocketAddr, Arc<AtomicUsize>) {
    let config = ca
        .issue(&["shop.test"])
        .server_config(&[b"h2", b"http/1.1"], None);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let ms: u64 = req
                        .uri()
                        .query()
                        .and_then(|q| q.strip_prefix("ms="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let version = format!("{:?}", req.version());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(version))))
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn an_http2_server_is_spoken_to_in_http2_with_requests_sharing_one_connection() {
    let ca = Authority::new("Junction test CA");
    let (addr, accepted) = versions_server(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let names = Names::shop_test();
    let port = addr.port();
    let ctx = |http2: bool| {
        let tls = TlsSettings {
            ca_file: Some(ca_file.clone()),
            ..TlsSettings::default()
        };
        let egress = EgressLimits {
            http2,
            ..EgressLimits::default()
        };
        shop_test(port, &names, tls, egress)
    };
    let url = format!("https://shop.test:{port}/?ms=300");

    let h2 = ctx(true);
    // The first call opens the connection; the next four run at once on
    // it, multiplexed.
    assert_eq!(get(&h2, &url).await.unwrap(), "HTTP/2.0");
    let together = futures_util::future::join_all((0..4).map(|_| get(&h2, &url))).await;
    for body in together {
        assert_eq!(body.unwrap(), "HTTP/2.0");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let stats = h2.egress.pool_stats();
    assert_eq!((stats.opened, stats.reused), (1, 4), "{stats:?}");

    // Turned off, the same server is spoken to in HTTP/1.1.
    let h1 = ctx(false);
    assert_eq!(get(&h1, &url).await.unwrap(), "HTTP/1.1");
}

/// A server whose keep-alive runs out just as the next request arrives:
/// it answers the first request on each connection, and closes the
/// connection on the second without answering. Counts connections and
/// the POSTs it read.
async fn closing_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let posts = Arc::new(AtomicUsize::new(0));
    let (count, posted) = (accepted.clone(), posts.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let posted = posted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                for answered in [true, false] {
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    if seen.starts_with(b"POST") {
                        posted.fetch_add(1, Ordering::SeqCst);
                    }
                    if answered {
                        let _ = tcp
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                }
                // Dropped: closed with the second request unanswered.
            });
        }
    });
    (addr, accepted, posts)
}

#[tokio::test]
async fn a_kept_connection_closed_under_a_request_is_retried_only_when_that_is_safe() {
    let (addr, accepted, posts) = closing_server().await;
    let ctx = Ctx {
        allow: vec![format!("http://{addr}")],
        allow_internal: vec![addr.to_string()],
        ..Ctx::default()
    }
    .build();
    // Each GET after the first meets a kept connection that closes under
    // it, and is sent again on a new one: no call fails.
    for i in 0..3 {
        let body = get(&ctx, &format!("http://{addr}/ok")).await;
        assert_eq!(body.as_deref(), Ok("ok"), "request {i}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    // A POST (no idempotency key) may have been acted on: it is not sent
    // twice, and the call fails with a retryable error instead.
    let report = probe()
        .read(&ctx, "post", &format!("2@http://{addr}/create"))
        .await;
    let reason = report.audit[0].error.clone().unwrap_or_default();
    assert!(report.into_result().is_err());
    assert!(reason.contains("sending the request failed"), "{reason}");
    assert_eq!(posts.load(Ordering::SeqCst), 1, "the POST went out once");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// The system's store is read from `SSL_CERT_FILE` when set, which only a
/// process of its own can be given: this test runs
/// `system_store_in_a_child_process` with it pointing at a private CA.
#[test]
fn the_systems_store_is_trusted_only_when_the_backend_asks_for_it() {
    let ca = Authority::new("Junction test CA in the system store");
    let server = ca.issue(&["shop.test"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), &server.key_pem).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "connections::system_store_in_a_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .env("JUNCTION_TEST_TLS_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("trusted through the system store"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by the_systems_store_is_trusted_only_when_the_backend_asks_for_it, with SSL_CERT_FILE set"]
async fn system_store_in_a_child_process() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("JUNCTION_TEST_TLS_DIR")
            .expect("run by the_systems_store_is_trusted_only_when_the_backend_asks_for_it"),
    );
    let identity = junction_backend_kit::tls::Identity {
        cert_pem: std::fs::read_to_string(dir.join("server.pem")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("server.key")).unwrap(),
    };
    let server = Server::start().await;
    let relay = TlsRelay::start(server.addr, identity.server_config(&[b"http/1.1"], None)).await;
    let port = relay.addr.port();
    let names = Names::shop_test();
    let ctx = |tls: TlsSettings| shop_test(port, &names, tls, EgressLimits::default());
    let url = format!("https://shop.test:{port}/ok");
    // The CA is only in the (test's) system store: the public roots alone
    // refuse it, and the error names the setting.
    let reason = get(&ctx(TlsSettings::default()), &url).await.unwrap_err();
    assert!(reason.contains("tls.system_roots"), "{reason}");
    let system = TlsSettings {
        system_roots: true,
        ..TlsSettings::default()
    };
    assert_eq!(get(&ctx(system), &url).await.unwrap(), "hello");
    println!("trusted through the system store");
}
