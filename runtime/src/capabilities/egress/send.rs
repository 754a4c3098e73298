//! Sends one allowed request: resolve, check every address, take a kept
//! connection to a checked address or open one (TLS with the backend's
//! trust, HTTP/2 when the server offers it by ALPN, else HTTP/1.1), with
//! the backend's caps and timeouts.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::EgressPolicy;
use super::allowlist::{Host, Scheme, Target, parse_target};
use super::audit::{AuditHandle, AuditLog};
use super::dns;
use super::ipclass::internal_class;
use super::pool::{Conn, Key, Pool};

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The header a repeatable create carries.
const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

pub(super) async fn send(
    policy: Arc<EgressPolicy>,
    audit: AuditLog,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri().clone();
    let method = request.method().to_string();
    let target = match parse_target(&uri) {
        Ok(t) => t,
        Err(e) => {
            let host = uri
                .authority()
                .map(|a| a.host().to_string())
                .unwrap_or_default();
            audit
                .start(&method, None, &host, &uri)
                .denied(e.reason.clone());
            tracing::info!(%e, "outbound request denied");
            return Err(Error::HttpRequestDenied);
        }
    };
    let entry = audit.start(&method, Some(&target), "", &uri);
    let deny = |reason: String, err: Error| {
        tracing::info!(target = %target, %reason, "outbound request denied");
        entry.denied(reason);
        Err(err)
    };

    if policy.allowlist.find(&target).is_none() {
        let reason = if policy.allowlist.is_empty() {
            format!("{target} is not allowed: the backend's allowlist is empty")
        } else {
            format!("{target} is not in the backend's allowlist")
        };
        return deny(reason, Error::HttpRequestDenied);
    }
    if let Some(requested) = &policy.requested
        && requested.find(&target).is_none()
    {
        return deny(
            format!(
                "{target} is allowed by the operator but the connector's manifest does not request it (its hosts)"
            ),
            Error::HttpRequestDenied,
        );
    }
    let limits = policy.limits.clone();
    if let Some(len) = content_length(request.headers())
        && len > limits.max_request_body_bytes
    {
        return deny(
            format!(
                "request body of {len} bytes is over the cap of {} bytes",
                limits.max_request_body_bytes
            ),
            Error::HttpRequestBodySize(Some(len)),
        );
    }

    let deadline = Instant::now() + limits.total_timeout;
    // The body is read in full (under the cap) before anything is sent, so
    // an oversized body is refused with its reason and the backend never
    // sees half a request.
    let (parts, body) = request.into_parts();
    let body = match collect_capped(body, limits.max_request_body_bytes, deadline).await {
        Ok(bytes) => bytes,
        Err((reason, err)) => {
            entry.failed(reason);
            return Err(err);
        }
    };
    entry.request_bytes(body.len() as u64);
    let request = http::Request::from_parts(parts, http_body_util::Full::new(body));
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .map_or(limits.connect_timeout, |t| t.min(limits.connect_timeout));

    let permit =
        match tokio::time::timeout_at(deadline, policy.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                entry.failed("timed out waiting for a free request slot".to_string());
                return Err(Error::ConnectionLimitReached);
            }
        };

    let addrs = match dns::resolve(&*policy.resolver, &target, connect_timeout).await {
        Ok(addrs) => addrs,
        Err((reason, err)) => {
            entry.failed(reason);
            return Err(err);
        }
    };
    if !policy.internal_allowed(&target) {
        for ip in &addrs {
            if let Some(class) = internal_class(*ip) {
                let how = match target.host {
                    Host::Ip(_) => format!("{} is a {class} address", target.host),
                    Host::Name(_) => format!("{} resolved to {ip} ({class})", target.host),
                };
                return deny(
                    format!(
                        "{how}; internal addresses are refused unless the operator lists {}:{} in the backend's allow_internal",
                        target.host, target.port
                    ),
                    Error::DestinationIpProhibited,
                );
            }
        }
    }

    let request = match prepare(&policy, &target, request) {
        Ok(r) => r,
        Err((reason, err)) => {
            entry.failed(reason);
            return Err(err);
        }
    };
    let first_byte = options
        .and_then(|o| o.first_byte_timeout)
        .map_or(deadline, |t| deadline.min(Instant::now() + t));
    // Only the checked addresses, in the order they would be dialled.
    let keys: Vec<Key> = addrs
        .iter()
        .map(|addr| Key {
            scheme: target.scheme,
            host: target.host.clone(),
            port: target.port,
            addr: *addr,
        })
        .collect();
    let pool = &policy.pool;
    let (key, conn, response) = loop {
        let (key, mut conn, reused) = match pool.acquire(&keys).await {
            Some((key, conn)) => (key, conn, true),
            None => match open(&policy, &target, &keys, connect_timeout, deadline).await {
                Ok((key, conn)) => {
                    pool.opened(&key, &conn);
                    (key, conn, false)
                }
                Err((reason, err)) => {
                    entry.failed(reason);
                    return Err(err);
                }
            },
        };
        match exchange(&target, &mut conn, request.clone(), first_byte).await {
            Ok(response) => break (key, conn, response),
            // A kept connection the server closed as the request went out
            // (its idle timeout): the request is sent again on a new one
            // when that cannot do it twice — it never left, or its method
            // is idempotent.
            Err(Failed::Unsent(..)) if reused => {
                tracing::debug!(target = %target, "kept connection closed; sending on a new one");
            }
            Err(Failed::Closed(..)) if reused && repeatable(&request) => {
                tracing::debug!(target = %target, "kept connection closed; sending again on a new one");
            }
            Err(
                Failed::Unsent(reason, err)
                | Failed::Closed(reason, err)
                | Failed::Other(reason, err),
            ) => {
                entry.failed(reason);
                return Err(err);
            }
        }
    };
    entry.status(response.status().as_u16());
    let max = limits.max_response_body_bytes;
    if let Some(len) = content_length(response.headers())
        && len > max
    {
        entry.failed(format!(
            "response body of {len} bytes is over the cap of {max} bytes"
        ));
        return Err(Error::HttpResponseBodySize(Some(len)));
    }
    let response = response.map(|inner| {
        CappedBody {
            inner,
            seen: 0,
            limit: max,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            entry,
            permit: Some(permit),
            conn: Some((pool.clone(), key, conn)),
        }
        .boxed_unsync()
    });
    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

type Failure = (String, Error);

async fn collect_capped(mut body: WasiBody, cap: u64, deadline: Instant) -> Result<Bytes, Failure> {
    let mut buf = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err((
                    "the guest did not finish the request body before the total timeout"
                        .to_string(),
                    Error::HttpRequestBodySize(Some(buf.len() as u64)),
                ));
            }
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => {
                return Err((format!("reading the request body failed: {e:?}"), e));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > cap {
                let seen = buf.len() as u64 + data.len() as u64;
                return Err((
                    format!("request body exceeded the cap of {cap} bytes"),
                    Error::HttpRequestBodySize(Some(seen)),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
}

async fn connect(keys: &[Key], timeout: Duration) -> Result<(Key, TcpStream), Failure> {
    let mut last = String::new();
    for key in keys {
        let addr = SocketAddr::new(key.addr, key.port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((key.clone(), stream));
            }
            Ok(Err(e)) => last = format!("connecting to {addr} failed: {e}"),
            Err(_) => {
                return Err((
                    format!(
                        "connecting to {addr} timed out after {} ms",
                        timeout.as_millis()
                    ),
                    Error::ConnectionTimeout,
                ));
            }
        }
    }
    Err((last, Error::ConnectionRefused))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A new connection to one of the checked addresses: TCP, TLS with the
/// backend's trust for `https`, then HTTP/2 if ALPN chose it, else
/// HTTP/1.1.
async fn open(
    policy: &EgressPolicy,
    target: &Target,
    keys: &[Key],
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<(Key, Conn), Failure> {
    let timed_out = || {
        (
            "timed out during the TLS handshake".to_string(),
            Error::HttpResponseTimeout,
        )
    };
    let (key, tcp) = connect(keys, connect_timeout).await?;
    let (stream, h2): (Box<dyn Stream>, bool) = match target.scheme {
        Scheme::Http => (Box::new(tcp), false),
        Scheme::Https => {
            let name = match &target.host {
                Host::Name(n) => {
                    rustls::pki_types::ServerName::try_from(n.clone()).map_err(|e| {
                        (
                            format!("invalid TLS server name: {e}"),
                            Error::TlsProtocolError,
                        )
                    })?
                }
                Host::Ip(ip) => rustls::pki_types::ServerName::from(*ip),
            };
            let connector = tokio_rustls::TlsConnector::from(policy.tls.clone());
            let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| {
                    let host = target.host.to_string();
                    match crate::tls::rustls_error(&e) {
                        Some(tls) if crate::tls::about_certificates(tls) => {
                            (crate::tls::describe(&host, tls), Error::TlsCertificateError)
                        }
                        Some(tls) => (crate::tls::describe(&host, tls), Error::TlsProtocolError),
                        None => (
                            format!("TLS handshake with {host} failed: {e}"),
                            Error::TlsProtocolError,
                        ),
                    }
                })?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Box::new(tls), h2)
        }
    };
    let handshake_failed = |e: hyper::Error| {
        (
            format!("HTTP handshake failed: {e}"),
            Error::HttpProtocolError,
        )
    };
    let conn = if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await
                .map_err(handshake_failed)?;
        drive(conn);
        Conn::H2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(handshake_failed)?;
        drive(conn);
        Conn::H1(sender)
    };
    Ok((key, conn))
}

/// Run a connection's I/O until it ends (its handles dropped, or closed by
/// the server).
fn drive(conn: impl Future<Output = Result<(), hyper::Error>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%e, "outbound connection ended with an error");
        }
    });
}

/// The request as it goes out, whatever the connection: `Host` is the
/// authority that was checked, whatever the guest put in its headers; the
/// backend's credential and the call's idempotency key are added where
/// they belong.
fn prepare(
    policy: &EgressPolicy,
    target: &Target,
    mut request: http::Request<Full<Bytes>>,
) -> Result<http::Request<Full<Bytes>>, Failure> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .scheme(target.scheme.to_string().as_str())
        .authority(target.authority())
        .path_and_query(path)
        .build()
        .map_err(|e| (format!("invalid path: {e}"), Error::HttpRequestUriInvalid))?;
    let headers = request.headers_mut();
    headers.remove(http::header::HOST);
    let host = http::HeaderValue::try_from(target.authority()).map_err(|_| {
        (
            "invalid host header".to_string(),
            Error::HttpRequestUriInvalid,
        )
    })?;
    headers.insert(http::header::HOST, host);
    // A guest that sends a credential of its own (such as an OAuth2 access
    // token it obtained with the operator's client credentials, which the
    // host added to the token request) keeps it; the operator's secret is
    // added only where the guest sent none, and only to the origins the
    // operator named for it: never to another allowed host.
    if let Some((name, value)) = policy.credential_for(target)
        && !headers.contains_key(name)
    {
        headers.insert(name.clone(), value.clone());
    }
    // A create the host may repeat after a crash or a lost answer: the
    // backend recognises the repeat by this key (where it supports one).
    let method = request.method().clone();
    let headers = request.headers_mut();
    if let Some(key) = policy.idempotency_for(&method, target)
        && !headers.contains_key(IDEMPOTENCY_KEY)
    {
        headers.insert(IDEMPOTENCY_KEY, key.clone());
    }
    Ok(request)
}

/// Whether sending `request` twice does no more than sending it once: its
/// method is idempotent (RFC 9110). An `Idempotency-Key` does not make a
/// POST so, as the backend may not know the header (the host adds it to
/// every create of a repeatable call).
fn repeatable(request: &http::Request<Full<Bytes>>) -> bool {
    request.method().is_idempotent()
}

/// How an exchange failed. On a kept connection, `Unsent` (it had closed
/// before the request went out) and `Closed` (it closed before a response
/// came) are candidates for a second try on a new connection.
enum Failed {
    Unsent(String, Error),
    Closed(String, Error),
    Other(String, Error),
}

/// One request on `conn`, until the response head.
async fn exchange(
    target: &Target,
    conn: &mut Conn,
    mut request: http::Request<Full<Bytes>>,
    first_byte: Instant,
) -> Result<http::Response<hyper::body::Incoming>, Failed> {
    let sent = match conn {
        Conn::H1(sender) => {
            // HTTP/1.1 puts only the path on the request line; the
            // authority is the `Host` header.
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            *request.uri_mut() = http::Uri::builder()
                .path_and_query(path)
                .build()
                .expect("a path that parsed once parses again");
            tokio::time::timeout_at(first_byte, sender.send_request(request)).await
        }
        Conn::H2(sender) => {
            // HTTP/2 carries the authority as `:authority` (from the URI).
            request.headers_mut().remove(http::header::HOST);
            tokio::time::timeout_at(first_byte, sender.send_request(request)).await
        }
    };
    match sent {
        Err(_) => Err(Failed::Other(
            "timed out before the response arrived".to_string(),
            Error::HttpResponseTimeout,
        )),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => {
            let host = target.host.to_string();
            let reason = crate::tls::rustls_error(&e).map_or_else(
                || format!("sending the request failed: {e}"),
                |tls| crate::tls::describe(&host, tls),
            );
            if e.is_canceled() {
                Err(Failed::Unsent(reason, Error::HttpProtocolError))
            } else if e.is_incomplete_message() || e.is_closed() {
                Err(Failed::Closed(reason, Error::HttpProtocolError))
            } else {
                Err(Failed::Other(reason, Error::HttpProtocolError))
            }
        }
    }
}

/// The response body as the guest reads it: capped, under the total
/// deadline, recorded in the audit entry, holding the backend's request slot
/// until it ends.
struct CappedBody {
    inner: hyper::body::Incoming,
    seen: u64,
    limit: u64,
    deadline: Pin<Box<Sleep>>,
    entry: AuditHandle,
    permit: Option<OwnedSemaphorePermit>,
    /// The connection, back to the pool when the body was read to its end
    /// (an HTTP/1.1 connection in the middle of a body cannot carry
    /// another request).
    conn: Option<(Arc<Pool>, Key, Conn)>,
}

impl CappedBody {
    fn finish(&mut self, error: Option<String>, complete: bool) {
        self.entry.response_bytes(self.seen);
        let conn = self.conn.take();
        if let Some(e) = error {
            self.entry.failed(e);
        } else if complete && let Some((pool, key, conn)) = conn {
            pool.release(key, conn);
        }
        self.permit = None;
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.permit.is_none() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.finish(
                Some("response body not finished before the total timeout".to_string()),
                false,
            );
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                self.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.seen > self.limit {
                    let msg = format!("response body exceeded the cap of {} bytes", self.limit);
                    let seen = self.seen;
                    self.finish(Some(msg), false);
                    Some(Err(Error::HttpResponseBodySize(Some(seen))))
                } else {
                    Some(Ok(frame))
                }
            }
            Some(Err(e)) => {
                self.finish(Some(format!("reading the response failed: {e}")), false);
                Some(Err(Error::Hyper(e)))
            }
            None => {
                self.finish(None, true);
                None
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.permit.is_none() || self.inner.is_end_stream()
    }
}

impl Drop for CappedBody {
    fn drop(&mut self) {
        if self.permit.is_some() {
            let complete = self.inner.is_end_stream();
            self.finish(None, complete);
        }
    }
}
