//! Native test doubles, as the Python and JavaScript SDKs have them: a
//! [`FakeHost`] that answers the host functions ([`crate::host`]) and a
//! [`ScriptedTransport`] that answers [`crate::http::send`], so an adapter
//! runs under plain `cargo test`, without WebAssembly:
//!
//! ```
//! use junction_guest::testing::{FakeHost, ScriptedTransport};
//! let host = FakeHost::new("https://shop.test")
//!     .transport(ScriptedTransport::new().json(200, serde_json::json!({"id": 7})));
//! let (found, host) = host.run(|| junction_guest::http::get("https://shop.test/items/7"));
//! assert_eq!(found.unwrap().status, 200);
//! assert_eq!(host.sent()[0].url, "https://shop.test/items/7");
//! ```
//!
//! Inside a component the same functions reach the real host: these are
//! compiled only natively.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::host::{Backend, Level};
use crate::http::{HttpError, Request, Response};
use crate::types::{JobRequest, LocalRecord};

thread_local! {
    static HOST: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// The host's imports in memory: what a test put in, and what the unit did.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub backend: Backend,
    pub settings: Value,
    /// (model, external id) → local id.
    pub bindings: HashMap<(String, String), String>,
    /// (model, local id) → record.
    pub records: HashMap<(String, String), LocalRecord>,
    pub state: HashMap<String, String>,
    pub jobs: Vec<JobRequest>,
    pub logs: Vec<(Level, String)>,
    pub transport: ScriptedTransport,
}

impl FakeHost {
    /// A backend `test-backend` (kind `test`, version `1.0.0`) at `base_url`.
    pub fn new(base_url: &str) -> Self {
        FakeHost {
            backend: Backend {
                name: "test-backend".into(),
                kind: "test".into(),
                version: "1.0.0".into(),
                base_url: base_url.trim_end_matches('/').to_string(),
            },
            settings: Value::Object(Default::default()),
            bindings: HashMap::new(),
            records: HashMap::new(),
            state: HashMap::new(),
            jobs: Vec::new(),
            logs: Vec::new(),
            transport: ScriptedTransport::new(),
        }
    }

    pub fn transport(mut self, transport: ScriptedTransport) -> Self {
        self.transport = transport;
        self
    }

    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    pub fn bind(mut self, model: &str, external_id: &str, local_id: &str) -> Self {
        self.bindings
            .insert((model.into(), external_id.into()), local_id.into());
        self
    }

    /// Run `f` as one call on this host (on this thread); what it
    /// returned, and the host with what the call did.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> (R, FakeHost) {
        HOST.with(|h| *h.borrow_mut() = Some(self));
        // Take the host back even if `f` panics, so the next test on this
        // thread starts without it.
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                let _ = HOST.try_with(|h| h.borrow_mut().take());
            }
        }
        let reset = Reset;
        let out = f();
        let host = HOST
            .with(|h| h.borrow_mut().take())
            .expect("the host is installed");
        drop(reset);
        (out, host)
    }

    /// The requests sent so far.
    pub fn sent(&self) -> &[Request] {
        &self.transport.sent
    }
}

/// Answers requests in order and keeps what was sent. A request past the
/// script fails the test, naming it.
#[derive(Debug, Clone, Default)]
pub struct ScriptedTransport {
    pub answers: VecDeque<Result<Response, HttpError>>,
    pub sent: Vec<Request>,
}

impl ScriptedTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer the next request with `status` and `body` as JSON.
    pub fn json(self, status: u16, body: Value) -> Self {
        self.response(
            status,
            &[("content-type", "application/json")],
            body.to_string(),
        )
    }

    /// Answer the next request with `status`, `headers` and `body`.
    pub fn response(
        mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Self {
        self.answers.push_back(Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }));
        self
    }

    /// Fail the next request as the host or the network would.
    pub fn error(mut self, error: HttpError) -> Self {
        self.answers.push_back(Err(error));
        self
    }

    fn send(&mut self, request: &Request) -> Result<Response, HttpError> {
        self.sent.push(request.clone());
        self.answers.pop_front().unwrap_or_else(|| {
            panic!(
                "unexpected request {} {}: the script is used up",
                request.method, request.url
            )
        })
    }
}

/// `f` on the installed host; natively, a host function outside
/// [`FakeHost::run`] is a test's mistake, named.
pub(crate) fn with<R>(what: &str, f: impl FnOnce(&mut FakeHost) -> R) -> R {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        let host = h.as_mut().unwrap_or_else(|| {
            panic!("{what} needs a host: natively, run the unit inside junction_guest::testing::FakeHost::run")
        });
        f(host)
    })
}

pub(crate) fn send(request: &Request) -> Result<Response, HttpError> {
    with("http::send", |h| h.transport.send(request))
}
