//! The CLI's side of the admin API: finds the server and its token, sends
//! one request per call over HTTP/1.1, and turns the API's JSON errors
//! (and a server that does not answer) into messages that say what to do.
//! Bodies and answers are the API's own wire types
//! (`junction_runtime::api::types`), the ones its OpenAPI document is
//! generated from.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use junction_runtime::api::types::ErrorBody;
use junction_runtime::config::ServiceConfig;

/// Where the server is and how to sign in, from flags, the environment or
/// the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's address (default: `listen` of the config file, or
    /// 127.0.0.1:7171).
    #[arg(long, global = true, env = "JUNCTION_SERVER")]
    pub server: Option<String>,
    /// The admin token (default: the config file's).
    #[arg(long, global = true, env = "JUNCTION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The service's config file, read for the address and the token.
    #[arg(
        long,
        short,
        global = true,
        default_value = "junction.toml",
        env = "JUNCTION_CONFIG"
    )]
    pub config: PathBuf,
}

/// A connection to one server.
#[derive(Debug)]
pub struct Client {
    /// `host:port`.
    addr: String,
    token: String,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        // The file is read only for what the flags do not give, so that a
        // file being edited does not stop `--server … --token … reload`.
        let file = if (args.server.is_none() || args.token.is_none()) && args.config.exists() {
            Some(ServiceConfig::load(&args.config)?)
        } else {
            None
        };
        let addr = match (&args.server, &file) {
            (Some(s), _) => s
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            (None, Some(c)) => c.listen.to_string(),
            (None, None) => "127.0.0.1:7171".to_string(),
        };
        let token = match (&args.token, &file) {
            (Some(t), _) => t.clone(),
            (None, Some(c)) => c.admin_token.clone(),
            (None, None) => bail!(
                "no admin token: pass --token (or set JUNCTION_TOKEN), or run where the service's junction.toml is (or pass --config)"
            ),
        };
        Ok(Client { addr, token })
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Send a request; the answer's JSON, or the API's error message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Value> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| {
                anyhow!(
                    "no Junction server answers at {} ({e}); start one with `junction serve --config junction.toml`, or point --server / JUNCTION_SERVER at a running one",
                    self.base()
                )
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("talking to {}", self.base()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        let bytes = match body {
            Some((content_type, bytes)) => {
                req = req.header(hyper::header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        // Installing compiles the component on the server: minutes, not
        // hours, even for a large one on a slow machine.
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            sender.send_request(req.body(Full::new(bytes))?),
        )
        .await
        .map_err(|_| anyhow!("{method} {}{path}: no answer within 300 s", self.base()))?
        .with_context(|| format!("{method} {}{path}", self.base()))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status.is_success() {
            return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
        // Every rejection, the framework's own included, is the API's one
        // error shape; anything else (a proxy's page) is shown as it came.
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => Err(anyhow!(
                "{} ({} from {})",
                error.message,
                status.as_u16(),
                self.base()
            )),
            Err(_) => Err(anyhow!(
                "{method} {path} answered {status}: {}",
                junction_runtime::text::clean(&String::from_utf8_lossy(&body))
            )),
        }
    }

    /// `method path` with a JSON body (or none), its answer read as the
    /// API's type `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<T> {
        let body = match body {
            Some(b) => Some(("application/json", serde_json::to_vec(b)?)),
            None => None,
        };
        let value = self.call(method, path, body).await?;
        self.typed(method, path, value)
    }

    /// An answer read as the API's type `T`.
    pub fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        value: Value,
    ) -> anyhow::Result<T> {
        serde_json::from_value(value).map_err(|e| {
            anyhow!(
                "{method} {}{path} answered in a shape this CLI (junction {}) does not know: {e}; use the CLI of the server's version (GET /health names it)",
                self.base(),
                env!("CARGO_PKG_VERSION")
            )
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send("GET", path, None::<&()>).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send("POST", path, Some(body)).await
    }

    /// A POST with no body.
    pub async fn act<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send("POST", path, None::<&()>).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send("DELETE", path, None::<&()>).await
    }
}

/// Percent-encode a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_another_shape_names_the_route_and_the_fix() {
        let client = Client {
            addr: "127.0.0.1:7171".into(),
            token: "t".into(),
        };
        let e = client
            .typed::<junction_runtime::api::types::JobView>(
                "GET",
                "/api/v1/jobs/1",
                serde_json::json!({"id": "one"}),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GET http://127.0.0.1:7171/api/v1/jobs/1")
                && e.contains("use the CLI of the server's version"),
            "{e}"
        );
    }
}
