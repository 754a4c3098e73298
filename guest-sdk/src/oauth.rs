//! OAuth2 client credentials without the secret ever reaching the
//! connector, as the Python and JavaScript SDKs have it.
//!
//! The operator configures the client id and secret as the backend's HTTP
//! Basic credentials; the host adds them to a request that carries no
//! `Authorization` of its own — here, only the token request. The access
//! token is kept in the backend's state, so every call (each may run in a
//! fresh instance) and every node shares it until shortly before it
//! expires; a 401 gets one new token and one retry.
//!
//! ```no_run
//! use junction_guest::oauth::OAuthClient;
//! # fn main() -> Result<(), junction_guest::Error> {
//! let api = OAuthClient::new("/oauth/v1/token");
//! let found: serde_json::Value =
//!     api.json("POST", "/crm/v3/objects/companies/search", &[], Some(&serde_json::json!({"limit": 1})))?;
//! # Ok(()) }
//! ```

use serde_json::Value;

use crate::Error;
use crate::host;
use crate::http::{self, Request, Response};

/// The state key the token is kept under (the same in every SDK).
pub const TOKEN_STATE: &str = "oauth.access-token";
/// Renew this long before the server says a token expires, so that a
/// request never leaves with a token about to lapse.
pub const TOKEN_MARGIN_SECONDS: u64 = 60;

/// JSON over HTTP with a client-credentials bearer token, against the
/// backend's `base_url`.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    token_path: String,
    scope: Option<String>,
    state_key: String,
    clock: fn() -> u64,
}

impl OAuthClient {
    /// A client whose token comes from `token_path` on the backend.
    pub fn new(token_path: &str) -> Self {
        OAuthClient {
            token_path: token_path.to_string(),
            scope: None,
            state_key: TOKEN_STATE.to_string(),
            clock: unix_seconds,
        }
    }

    /// Ask for this scope.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_string());
        self
    }

    /// Keep the token under another state key (two APIs on one backend).
    pub fn state_key(mut self, key: &str) -> Self {
        self.state_key = key.to_string();
        self
    }

    /// Seconds since the Unix epoch, for tests that move time.
    pub fn clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// The kept token while it is valid, else a new one.
    pub fn token(&self) -> Result<String, Error> {
        if let Some(kept) = host::state_get(&self.state_key) {
            let saved: Option<(String, u64)> =
                serde_json::from_str::<Value>(&kept).ok().and_then(|v| {
                    Some((
                        v["token"].as_str()?.to_string(),
                        v["expires"].as_f64()? as u64,
                    ))
                });
            if let Some((token, expires)) = saved
                && expires > (self.clock)()
            {
                return Ok(token);
            }
        }
        self.new_token()
    }

    /// A new token from the token endpoint, kept in the backend's state.
    pub fn new_token(&self) -> Result<String, Error> {
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = &self.scope {
            form.push_str("&scope=");
            form.push_str(&encode(scope));
        }
        let request = Request::new("POST", &url(&self.token_path, &[]))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        let answer: Value = http::send(&request)?.error_for_status()?.json()?;
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "the token endpoint {} answered without an access_token",
                    self.token_path
                ))
            })?
            .to_string();
        let lifetime = match answer.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let expires = (self.clock)() + lifetime.saturating_sub(TOKEN_MARGIN_SECONDS);
        let saved = serde_json::json!({"token": token, "expires": expires});
        host::state_set(&self.state_key, &saved.to_string())?;
        Ok(token)
    }

    /// The response as it came (statuses are not errors), after one new
    /// token and one retry on a 401. `path` is relative to the backend's
    /// `base_url`; `query` pairs are percent-encoded.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Response, Error> {
        let mut request =
            Request::new(method, &url(path, query)).header("accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body)?);
        }
        let with = |token: &str| {
            request
                .clone()
                .header("authorization", &format!("Bearer {token}"))
        };
        let response = http::send(&with(&self.token()?))?;
        if response.status != 401 {
            return Ok(response);
        }
        host::info("the backend refused the access token; getting a new one");
        Ok(http::send(&with(&self.new_token()?))?)
    }

    /// [`OAuthClient::send`], with statuses as contract errors; the JSON
    /// answer (`null` for an empty body).
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, Error> {
        let response = self.send(method, path, query, body)?.error_for_status()?;
        if response.body.is_empty() {
            return Ok(serde_json::from_value(Value::Null)?);
        }
        response.json()
    }
}

/// `path` on the backend's base URL, with `query` percent-encoded.
fn url(path: &str, query: &[(&str, &str)]) -> String {
    let mut url = host::backend().base_url;
    if !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(path);
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 && !path.contains('?') {
            '?'
        } else {
            '&'
        });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    url
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHost, ScriptedTransport};
    use serde_json::json;

    fn token(t: &str, expires_in: u64) -> Value {
        json!({"access_token": t, "expires_in": expires_in})
    }

    #[test]
    fn the_token_is_fetched_once_and_kept_in_state() {
        let script = ScriptedTransport::new()
            .json(200, token("tok", 1800))
            .json(200, json!({"a": 1}))
            .json(200, json!({"a": 2}));
        let host = FakeHost::new("https://crm.test/").transport(script);
        let (found, host) = host.run(|| {
            let api = OAuthClient::new("/oauth/v1/token").scope("crm read");
            let a: Value = api.json("GET", "/x", &[("q", "a b&c")], None)?;
            let b: Value = api.json("POST", "x", &[], Some(&json!({"k": 1})))?;
            Ok::<_, Error>((a, b))
        });
        assert_eq!(found.unwrap(), (json!({"a": 1}), json!({"a": 2})));
        let sent = host.sent();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].url, "https://crm.test/oauth/v1/token");
        assert_eq!(
            sent[0].body.as_deref(),
            Some(&b"grant_type=client_credentials&scope=crm%20read"[..])
        );
        // The token request carries no Authorization: the host adds the
        // operator's client credentials to it.
        assert!(!sent[0].headers.iter().any(|(k, _)| k == "authorization"));
        assert_eq!(sent[1].url, "https://crm.test/x?q=a%20b%26c");
        for s in &sent[1..] {
            assert!(
                s.headers
                    .contains(&("authorization".into(), "Bearer tok".into()))
            );
        }
        let kept: Value = serde_json::from_str(&host.state[TOKEN_STATE]).unwrap();
        assert_eq!(kept["token"], "tok");
    }

    #[test]
    fn an_expired_token_is_renewed_before_the_request() {
        let script = ScriptedTransport::new()
            .json(200, token("new", 600))
            .json(200, json!({}));
        let mut host = FakeHost::new("https://crm.test").transport(script);
        // Expired a second ago by the client's clock.
        let stale = json!({"token": "old", "expires": unix_seconds() - 1});
        host.state.insert(TOKEN_STATE.into(), stale.to_string());
        let (found, host) =
            host.run(|| OAuthClient::new("/t").json::<Value>("GET", "/x", &[], None));
        found.unwrap();
        assert_eq!(host.sent()[0].url, "https://crm.test/t");
        assert!(
            host.sent()[1]
                .headers
                .contains(&("authorization".into(), "Bearer new".into()))
        );
    }

    #[test]
    fn a_401_gets_one_new_token_and_one_retry() {
        let script = ScriptedTransport::new()
            .json(200, token("one", 1800))
            .json(401, json!({"message": "expired"}))
            .json(200, token("two", 1800))
            .json(401, json!({"message": "still no"}));
        let host = FakeHost::new("https://crm.test").transport(script);
        let (found, host) =
            host.run(|| OAuthClient::new("/t").json::<Value>("GET", "/x", &[], None));
        // The second 401 is the operator's problem, not retried again.
        assert!(matches!(found, Err(Error::Config(m)) if m.contains("still no")));
        assert_eq!(host.sent().len(), 4);
        assert!(
            host.sent()[3]
                .headers
                .contains(&("authorization".into(), "Bearer two".into()))
        );
    }

    #[test]
    fn a_token_answer_without_a_token_is_a_config_error() {
        let script = ScriptedTransport::new().json(200, json!({"error": "nope"}));
        let host = FakeHost::new("https://crm.test").transport(script);
        let (found, _) = host.run(|| OAuthClient::new("/t").token());
        assert!(matches!(found, Err(Error::Config(m)) if m.contains("without an access_token")));
    }
}
