//! The dashboard in headless Chromium, driven over WebDriver
//! (chromedriver): sign in, see the overview, filter jobs by state,
//! requeue a failed job and watch it finish on its page; a wrong token
//! named and no polling after it; every operator page at desktop and
//! 400 px widths without sideways scrolling; job times, a record's
//! timeline, discarding a dead event, signing out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or CHROMIUM and
//! CHROMEDRIVER pointing at them). Without them the test says it was
//! skipped, unless JUNCTION_REQUIRE_BROWSER is set (as `.ci/run` does),
//! where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use junction_demo_shop::Faults;
use junction_runtime::api::{ApiState, app};
use serde_json::{Value, json};

use super::api::TOKEN;
use super::sync::{import, world};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tool(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// One HTTP/1.1 exchange with chromedriver.
async fn http(addr: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))?;
    let res = sender.send_request(req).await?;
    let body = res.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

struct Driver {
    addr: String,
    session: String,
    process: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &PathBuf, chromium: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if http(&addr, "GET", "/status", None).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags this machine's closed network needs: without the
        // background-networking ones Chromium keeps dialling out.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let v = http(&addr, "POST", "/session", Some(caps)).await.unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Driver {
            addr,
            session,
            process,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = http(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await
        .unwrap();
        assert!(v["value"]["error"].is_null(), "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching `css`, waiting up to 15 s for it.
    async fn find(&self, css: &str) -> String {
        for _ in 0..150 {
            let v = http(
                &self.addr,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.script("return document.body.innerText").await;
        panic!("no element {css} on the page:\n{page}");
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    /// Wait up to 30 s for `js` to return true.
    async fn until(&self, js: &str, what: &str) {
        for _ in 0..300 {
            if self.script(js).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.script("return document.body.innerText").await;
        panic!("{what} did not happen; the page shows:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_filters_jobs_and_requeues_a_failed_one() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let w = world().await;
    // One job that fails: the shop is down for its only try.
    w.shop.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    w.run(vec![import("product", "DS-00001").max_retries(1)])
        .await;
    let failed = w.failed().await;
    assert_eq!(failed.len(), 1);
    let id = failed[0].id;
    w.shop.set_faults(Faults::default());
    w.run(vec![import("product", "DS-00002")]).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(ApiState::new(&w.node, TOKEN, None));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let d = Driver::start(&chromedriver, &chromium).await;
    d.go(&format!("{base}/")).await;
    d.type_into("#token-input", TOKEN).await;
    d.click("#token-save").await;
    d.until(
        "return document.querySelectorAll('#counts .card').length === 7",
        "the overview's job counts",
    )
    .await;
    d.find("canvas#chart").await;

    d.go(&format!("{base}/#/jobs")).await;
    d.find("#jobs-table tr[data-id]").await;
    d.click("#job-filter-state option[value=failed]").await;
    d.click("#job-filters button[type=submit]").await;
    d.until(
        &format!(
            "const rows = [...document.querySelectorAll('#jobs-table tr[data-id]')];
             return location.hash.includes('state=failed') && rows.length === 1
                 && rows[0].dataset.id === '{id}'
                 && rows[0].querySelector('.state').textContent === 'failed'"
        ),
        "filtering to the failed job",
    )
    .await;
    d.click(&format!("button.requeue[data-id='{id}']")).await;
    d.go(&format!("{base}/#/jobs/{id}")).await;
    d.until(
        "const s = document.getElementById('job-state'); return !!s && s.textContent === 'done'",
        "the requeued job finishing",
    )
    .await;
    // Its page shows the outbound requests of both tries and the log.
    d.until(
        "return document.querySelectorAll('#job-audit tr').length >= 3",
        "the job's outbound HTTP audit",
    )
    .await;
    let text = d
        .script("return document.getElementById('view').innerText")
        .await;
    assert!(text.as_str().unwrap().contains("503"), "{text}");
    d.cmd("DELETE", "", None).await;
    server.abort();
}

/// The chromium and chromedriver to use, or `None` (said skipped).
fn browser() -> Option<(PathBuf, PathBuf)> {
    match (
        tool("CHROMIUM", "/usr/bin/chromium"),
        tool("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        _ => {
            let message = "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) or CHROMIUM and CHROMEDRIVER";
            if std::env::var_os("JUNCTION_REQUIRE_BROWSER").is_some() {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_pages_work_on_a_desktop_and_a_400_px_screen() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let w = world().await;
    w.import_all().await;
    // One dead event: a delivery of an event that is not in the outbox
    // fails for good at once.
    let mut dead = junction_runtime::queue::JobSpec::new(
        junction_runtime::sync::DELIVER,
        json!({"backend": "shop", "model": "product", "event": 999_999}),
    );
    dead.backend = Some("shop".into());
    w.node.queue.enqueue(dead).await.unwrap();
    w.settle().await;
    let binding = w
        .storage
        .binding("shop", "product", "DS-00001")
        .await
        .unwrap()
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(ApiState::new(&w.node, TOKEN, None));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let d = Driver::start(&chromedriver, &chromium).await;

    // A wrong token: the page says so and stops asking the server.
    d.go(&format!("{base}/")).await;
    d.type_into("#token-input", "not-the-token").await;
    d.click("#token-save").await;
    d.until(
        "const e = document.getElementById('login-error');
         return !e.hidden && e.textContent.includes('refused')",
        "the refused token's message",
    )
    .await;
    d.script(
        "window.__calls = 0; const f = window.fetch;
         window.fetch = (...a) => { window.__calls++; return f(...a); }; return true",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        d.script("return window.__calls").await,
        json!(0),
        "no polling after a 401"
    );
    d.type_into("#token-input", TOKEN).await;
    d.click("#token-save").await;
    d.until(
        "return document.querySelectorAll('#counts .card').length === 7",
        "the overview after signing in",
    )
    .await;

    let local = &binding.local_id;
    let pages: Vec<(String, String)> = vec![
        ("#/".into(), "#counts .card".into()),
        ("#/backends".into(), "#backends-table tr[data-name]".into()),
        ("#/connectors".into(), "#connectors-table".into()),
        ("#/jobs".into(), "#jobs-table tr[data-id]".into()),
        ("#/events".into(), "#dead-table tr[data-job]".into()),
        ("#/nodes".into(), "#nodes-table td".into()),
        (
            "#/records?model=product".into(),
            "#records-table tr[data-id]".into(),
        ),
        (
            "#/bindings?backend=shop&model=product".into(),
            "#bindings-table td".into(),
        ),
        (
            format!("#/records/product/{local}"),
            "#record-timeline td".into(),
        ),
    ];
    for (width, height) in [(1280, 900), (400, 800)] {
        d.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
        let inner = d.script("return window.innerWidth").await;
        assert!(
            inner.as_i64().is_some_and(|w| w <= width),
            "the window is {inner} px wide, not {width}"
        );
        for (hash, ready) in &pages {
            d.go(&format!("{base}/{hash}")).await;
            d.find(ready).await;
            let fits = d
                .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
                .await;
            assert_eq!(fits, json!(true), "{hash} scrolls sideways at {width} px");
        }
    }
    // The job page shows when the job was enqueued, started and finished.
    d.go(&format!("{base}/#/jobs?state=done")).await;
    d.click("#jobs-table tr[data-id] a").await;
    d.until(
        "const t = document.getElementById('job-times');
         return !!t && t.textContent.includes('Finished') && t.textContent.includes('ran ')",
        "the job's times and duration",
    )
    .await;
    // The record's page names its binding and its import.
    d.go(&format!("{base}/#/records/product/{local}")).await;
    d.until(
        "const b = document.getElementById('record-bindings');
         return !!b && b.textContent.includes('DS-00001')",
        "the record's binding",
    )
    .await;
    // The dead event is discarded from its page.
    d.go(&format!("{base}/#/events")).await;
    d.click("#dead-table button.dead-discard").await;
    d.until(
        "return document.querySelectorAll('#dead-table tr[data-job]').length === 0",
        "the discarded dead event leaving the list",
    )
    .await;
    // Signing out forgets the token.
    d.click("#sign-out").await;
    d.until(
        "return !document.getElementById('login').hidden && !localStorage.getItem('junction.token')",
        "signing out",
    )
    .await;
    d.cmd("DELETE", "", None).await;
    server.abort();
}
