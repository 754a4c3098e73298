//! The trust boundary, tried as an attacker would: the probe connector
//! (built from source) serves backend `evil` on a real node beside the
//! Magento connector serving backend `shop` (demo-shop, its own token and
//! records). Every test makes the probe try one thing SECURITY.md says a
//! connector cannot do, asserts the host's specific refusal, and checks
//! that `shop` was left untouched.

use std::sync::Arc;

use junction_runtime::backend::BackendConfig;
use junction_runtime::events::{GuestListener, Listener};
use junction_runtime::model::{Event, RemoteRecord};
use junction_runtime::queue::JobSpec;
use junction_runtime::queue::job::{Job, JobFilter, JobState};
use junction_runtime::storage::StoredEvent;
use junction_runtime::sync::batch::batch_job;
use junction_runtime::sync::{BackendUnits, DELETE_LOCAL, SyncError};
use junction_runtime::{CallError, GuestError};
use serde_json::{Value, json};

use crate::support::Server;
use crate::sync::{World, world};

/// The shop world plus backend `evil`, served by the probe, whose base URL
/// is `server` and which may also reach `other` (a second allowed host).
struct Arena {
    w: World,
    server: Server,
    other: Server,
}

fn evil_config(server: &Server, other: &Server, change: impl FnOnce(&mut Value)) -> BackendConfig {
    let mut v = json!({
        "name": "evil",
        "kind": "probe",
        "version": "1.2.0",
        "base_url": server.origin(),
        "allow": [other.origin()],
        "allow_internal": [server.addr.to_string(), other.addr.to_string()],
        "auth": {"type": "bearer", "token": "evil-backend-secret"},
    });
    change(&mut v);
    serde_json::from_value(v).unwrap()
}

async fn arena_with(change: impl FnOnce(&mut Value)) -> Arena {
    let w = world().await;
    w.import_all().await;
    let (server, other) = (Server::start().await, Server::start().await);
    let probe = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    w.node.sync.install(&probe).await.unwrap();
    w.node
        .sync
        .configure(&evil_config(&server, &other, change))
        .await
        .unwrap();
    Arena { w, server, other }
}

async fn arena() -> Arena {
    arena_with(|_| {}).await
}

impl Arena {
    async fn evil(&self) -> Arc<BackendUnits> {
        self.w.node.sync.backend("evil").await.unwrap()
    }

    /// The probe's `read(behaviour, arg)` on backend `evil`.
    async fn attack(&self, behaviour: &str, arg: &str) -> Result<RemoteRecord, CallError> {
        let b = self.evil().await;
        b.route(behaviour)
            .unwrap()
            .adapter
            .read(&b.ctx, behaviour, arg)
            .await
            .into_result()
    }

    /// What the host answered a probe's call that reports it (`ok`/`err`).
    async fn answer(&self, behaviour: &str, arg: &str) -> Value {
        let record = self.attack(behaviour, arg).await.unwrap();
        serde_json::from_str(&record.data).unwrap()
    }

    async fn all_jobs(&self) -> Vec<Job> {
        self.w
            .storage
            .jobs(&JobFilter {
                limit: 100_000,
                ..JobFilter::default()
            })
            .await
            .unwrap()
    }

    /// One of shop's bound products.
    async fn a_product(&self) -> junction_runtime::storage::Binding {
        self.w
            .storage
            .bindings_page("shop", "product", None, 1)
            .await
            .unwrap()
            .remove(0)
    }

    /// Everything `shop` has: bound records with their data.
    async fn shop_snapshot(&self) -> Vec<(String, i64, String)> {
        let mut out = Vec::new();
        for model in ["category", "product", "customer", "order"] {
            out.push((model.to_string(), self.w.bound(model).await, String::new()));
        }
        let p = self.a_product().await;
        let r = self
            .w
            .storage
            .record("product", &p.local_id)
            .await
            .unwrap()
            .unwrap();
        out.push(("product 1".into(), r.version as i64, r.data));
        out
    }
}

fn refused(answer: &Value, needle: &str) {
    let err = answer["err"]
        .as_str()
        .unwrap_or_else(|| panic!("not refused: {answer}"))
        // The probe reports the error's Debug form, quotes escaped.
        .replace("\\\"", "\"");
    assert!(err.contains("Permanent"), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[tokio::test]
async fn a_connector_cannot_enqueue_jobs_for_another_backend() {
    let a = arena().await;
    let before = a.shop_snapshot().await;
    let jobs_before = a.all_jobs().await.len();
    for (function, args) in [
        (
            "junction.import-record",
            json!({"backend": "shop", "model": "product", "external_id": "1"}),
        ),
        (
            "junction.import-batch",
            json!({"backend": "shop", "model": "product"}),
        ),
        (
            "junction.export-record",
            json!({"backend": "shop", "model": "product", "local_id": "x"}),
        ),
        (
            "junction.delete-local",
            json!({"backend": "shop", "model": "product", "external_id": "1"}),
        ),
        (
            "junction.delete-remote",
            json!({"backend": "shop", "model": "product", "local_id": "x"}),
        ),
        (
            "junction.import-record",
            json!({"backend": ["shop"], "model": "echo", "external_id": "1"}),
        ),
    ] {
        let answer = a
            .answer(
                "enqueue",
                &json!({"function": function, "args": args}).to_string(),
            )
            .await;
        refused(&answer, "runs for backend \"evil\"");
    }
    assert_eq!(
        a.all_jobs().await.len(),
        jobs_before,
        "nothing was enqueued"
    );

    // Without a backend the job is the caller's own.
    let answer = a
        .answer(
            "enqueue",
            &json!({"function": "junction.import-record",
                    "args": {"model": "echo", "external_id": "7"}})
            .to_string(),
        )
        .await;
    let id: i64 = answer["ok"].as_str().unwrap().parse().unwrap();
    let job = a.w.storage.job(id).await.unwrap().unwrap();
    assert_eq!(job.backend.as_deref(), Some("evil"));
    let args: Value = serde_json::from_str(&job.args).unwrap();
    assert_eq!(args["backend"], "evil");
    a.w.settle().await;
    assert_eq!(a.shop_snapshot().await, before, "shop is untouched");
}

#[tokio::test]
async fn a_job_acts_only_for_the_backend_it_was_enqueued_for() {
    // A job stored under `evil` whose arguments name `shop` (as a guest
    // could enqueue before this check existed) fails without touching shop.
    let a = arena().await;
    let before = a.shop_snapshot().await;
    let p = a.a_product().await;
    let mut spec = JobSpec::new(
        DELETE_LOCAL,
        json!({"backend": "shop", "model": "product", "external_id": p.external_id}),
    );
    spec.backend = Some("evil".into());
    spec.request.max_retries = Some(1);
    let id = a.w.node.queue.enqueue(spec).await.unwrap().id;
    a.w.settle().await;
    let job = a.w.storage.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    let message = job.error_message.unwrap_or_default();
    assert!(
        message.contains("runs for backend \"evil\"") && message.contains("\"shop\""),
        "{message}"
    );
    assert_eq!(a.shop_snapshot().await, before, "shop is untouched");
}

#[tokio::test]
async fn guest_identity_keys_cannot_swallow_another_backends_jobs() {
    let a = arena().await;
    // The key of shop's batch import, parked far in the future.
    let answer = a
        .answer(
            "enqueue",
            &json!({"function": "junction.import-batch", "args": {"model": "echo"},
                    "identity_key": "batch:shop:product", "eta": "2099-01-01T00:00:00Z"})
            .to_string(),
        )
        .await;
    let parked: i64 = answer["ok"].as_str().unwrap().parse().unwrap();
    let job = a.w.storage.job(parked).await.unwrap().unwrap();
    assert_eq!(
        job.identity_key.as_deref(),
        Some("guest:evil:batch:shop:product")
    );
    // Shop's own scheduled or manual import is not collapsed into it.
    let shop =
        a.w.node
            .queue
            .enqueue(batch_job("shop", "product", false))
            .await
            .unwrap();
    assert!(!shop.deduplicated, "shop's import was swallowed");
    assert_ne!(shop.id, parked);
}

#[tokio::test]
async fn credentials_go_only_to_their_origin() {
    let a = arena().await;
    let header = |s: &Server| {
        s.last_headers
            .lock()
            .unwrap()
            .iter()
            .any(|h| h == "authorization: Bearer evil-backend-secret")
    };
    a.attack("http", &a.server.url("/headers")).await.unwrap();
    assert!(
        header(&a.server),
        "the base URL's origin gets the credential"
    );
    a.attack("http", &a.other.url("/headers")).await.unwrap();
    assert!(
        !a.other.last_headers.lock().unwrap().is_empty(),
        "the second allowed host was reached"
    );
    assert!(!header(&a.other), "another allowed host got the secret");

    // The operator may name other origins; then only those get it.
    let a = arena_with({
        let other = "http://127.0.0.1:1".to_string();
        move |v| v["auth_origins"] = json!([other])
    })
    .await;
    a.attack("http", &a.server.url("/headers")).await.unwrap();
    assert!(!header(&a.server), "not a named credential origin");
}

#[tokio::test]
async fn a_host_the_manifest_does_not_request_is_denied() {
    // The probe requests http://127.0.0.1:* only; the operator allows a
    // name that resolves there too, which the probe never asked for.
    let a = arena_with(|v| {
        let port = v["base_url"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        v["allow"] = json!([format!("http://localhost:{port}")]);
        v["allow_internal"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!("localhost:{port}")));
    })
    .await;
    let url = format!("http://localhost:{}/ok", a.server.addr.port());
    let err = a.attack("http", &url).await.unwrap_err();
    let b = a.evil().await;
    let report = b
        .route("http")
        .unwrap()
        .adapter
        .read(&b.ctx, "http", &url)
        .await;
    let denied = report
        .audit
        .iter()
        .find_map(|e| e.denied.clone())
        .unwrap_or_default();
    assert!(denied.contains("does not request it"), "{denied} / {err}");
}

#[tokio::test]
async fn local_data_is_scoped_to_the_granted_models() {
    let a = arena().await;
    let p = a.a_product().await;
    // Reads of a model the probe never requested trap, naming the grant.
    for (behaviour, arg) in [
        ("records-get", format!("product/{}", p.local_id)),
        ("to-local", "product/1".to_string()),
    ] {
        let err = a.attack(behaviour, &arg).await.unwrap_err().to_string();
        assert!(
            err.contains("\"product\" is not granted"),
            "{behaviour}: {err}"
        );
    }
    // Binding into it is the guest's permanent error; nothing is bound.
    refused(
        &a.answer("bind", &format!("product/x-1/{}", p.local_id))
            .await,
        "not granted",
    );
    assert_eq!(
        a.w.storage
            .binding_to_external("evil", "product", &p.local_id)
            .await
            .unwrap(),
        None
    );
    // Its own model works.
    assert_eq!(
        a.answer("records-get", "echo/none").await["found"],
        Value::Null
    );

    // An operator grant narrower than the manifest takes even that away.
    let a = arena_with(|v| v["grants"] = json!({"models": []})).await;
    let err = a
        .attack("records-get", "echo/none")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"echo\" is not granted"), "{err}");
}

fn stored(name: &str, model: &str, payload: Value) -> StoredEvent {
    StoredEvent {
        id: 1,
        event: Event {
            name: name.into(),
            model: model.into(),
            local_id: Some("l1".into()),
            changed_fields: vec![],
            payload: payload.to_string(),
            origin_backend: None,
        },
        created_at: 0,
    }
}

fn listener(b: &BackendUnits) -> GuestListener {
    GuestListener {
        backend: b.name().to_string(),
        unit: b.adapters[0].unit.clone(),
        ctx: b.ctx.clone(),
        patterns: b.listens.clone(),
    }
}

#[tokio::test]
async fn a_listener_hears_only_granted_models_and_its_jobs_stay_its_own() {
    let a = arena().await;
    let b = a.evil().await;
    let l = listener(&b);
    // The manifest asks for record-written:* but only `echo` is granted:
    // a customer's full payload never reaches the guest.
    let jobs = l
        .on_event(&stored(
            "record-written",
            "customer",
            json!({"email": "x@y"}),
        ))
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
    let jobs = l
        .on_event(&stored("record-written", "echo", json!({})))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].request.function, junction_runtime::sync::DELIVER);
    assert_eq!(jobs[0].backend.as_deref(), Some("evil"));
    assert_eq!(jobs[0].request.channel.as_deref(), Some("root.evil"));
    // What the guest decides when the delivery runs: its own backend's jobs.
    let decide = |payload: Value| {
        let (sync, b) = (a.w.node.sync.clone(), b.clone());
        async move {
            sync.decide_event(
                &b,
                &stored("record-written", "echo", payload),
                &mut junction_runtime::sync::trail::Trail::default(),
            )
            .await
        }
    };
    let jobs = decide(json!({})).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].backend.as_deref(), Some("evil"));
    assert_eq!(jobs[0].request.channel.as_deref(), Some("root.evil"));

    // A returned job naming another backend, channel or a better priority
    // fails the delivery with the reason; nothing of it is enqueued.
    for (attack, needle) in [
        (
            json!({"function": "junction.delete-local",
                   "args": {"backend": "shop", "model": "product", "external_id": "1"}}),
            "runs for backend \"evil\"",
        ),
        (
            json!({"function": "junction.export-record",
                   "args": {"model": "echo", "local_id": "l1"}, "channel": "root.shop"}),
            "outside this backend's channels",
        ),
        (
            json!({"function": "junction.export-record",
                   "args": {"model": "echo", "local_id": "l1"}, "priority": 0}),
            "priority 0",
        ),
        (json!({"function": "junction.sleep", "args": {}}), ""),
    ] {
        let e = decide(json!({"attack": attack})).await;
        match e {
            Err(junction_runtime::queue::worker::JobFailure::Fail { message, .. }) => {
                assert!(message.contains(needle), "{needle}: {message}")
            }
            Err(other) => panic!("a refusal fails the delivery for good: {other:?}"),
            // A function a guest may not run is refused by the queue.
            Ok(specs) => {
                let err = a.w.node.queue.enqueue_batch(&specs).await.unwrap_err();
                assert!(
                    err.to_string().contains("not one a connector may enqueue"),
                    "{err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn job_placement_stays_in_the_backends_subtree() {
    let a = arena_with(|v| v["jobs"] = json!({"min_priority": 20})).await;
    let enqueue = |extra: Value| {
        let mut req = json!({"function": "junction.import-record",
                             "args": {"model": "echo", "external_id": "1"}});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        req.to_string()
    };
    let before = a.all_jobs().await.len();
    refused(
        &a.answer("enqueue", &enqueue(json!({"channel": "root.shop"})))
            .await,
        "outside this backend's channels",
    );
    refused(
        &a.answer("enqueue", &enqueue(json!({"channel": "root"})))
            .await,
        "use root.evil",
    );
    refused(
        &a.answer("enqueue", &enqueue(json!({"priority": 5}))).await,
        "20 or above",
    );
    refused(
        &a.answer(
            "enqueue",
            &json!({"function": "junction.sleep", "args": {"ms": 3600000}}).to_string(),
        )
        .await,
        "not one a connector may enqueue",
    );
    assert_eq!(a.all_jobs().await.len(), before, "nothing was enqueued");

    let ok = a
        .answer("enqueue", &enqueue(json!({"channel": "root.evil.slow"})))
        .await;
    let id: i64 = ok["ok"].as_str().unwrap().parse().unwrap();
    let job = a.w.storage.job(id).await.unwrap().unwrap();
    assert_eq!((job.channel.as_str(), job.priority), ("root.evil.slow", 20));
}

#[tokio::test]
async fn a_version_that_requests_more_needs_the_operators_approval() {
    let a = arena().await;
    let greedy = std::fs::read(junction_test_artifacts::PROBE_GREEDY).unwrap();
    let err = a.w.node.sync.install(&greedy).await.unwrap_err();
    let SyncError::NeedsApproval { more, digest, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        more.lines(),
        vec![
            "model customer: import, read",
            "event record-deleted:*",
            "host https://api.example.com",
            "secret api_key",
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains("--approve") && message.contains("0.1.0"),
        "{message}"
    );
    // Installed but not active: the probe 0.1.0 still serves evil.
    let b = a.evil().await;
    assert!(
        b.adapter_labels().ends_with("0.1.0"),
        "{}",
        b.adapter_labels()
    );
    assert!(a.attack("records-get", "customer/c1").await.is_err());

    let active =
        a.w.node
            .sync
            .activate_connector(digest, true)
            .await
            .unwrap();
    assert!(active.active);
    let b = a.evil().await;
    assert!(
        b.adapter_labels().ends_with("0.2.0"),
        "{}",
        b.adapter_labels()
    );
    // What was approved is now granted (the operator's grants permitting).
    assert_eq!(
        a.answer("records-get", "customer/nope").await["found"],
        Value::Null
    );
}

#[tokio::test]
async fn guest_text_cannot_forge_what_operators_read() {
    // A connector's log line and error that try to rewrite the terminal
    // and fake a line of the outbound-HTTP section.
    let a = arena().await;
    let forged = "fine\n  try 1 GET http://allowed/ok → 200\u{1b}[2K\u{1b}[1A\r\u{202e}";
    let err = a.attack("print", forged).await.unwrap_err();
    assert!(
        matches!(err.guest(), Some(GuestError::Permanent { .. })),
        "{err:?}"
    );
    let shown = junction_runtime::text::clean(&err.to_string());
    assert!(
        !shown.chars().any(junction_runtime::text::is_hazard),
        "{shown:?}"
    );
    assert!(
        shown.contains("\\n  try 1 GET") && shown.contains("\\u{1b}[2K"),
        "{shown}"
    );
}

#[tokio::test]
async fn credentials_are_sealed_at_rest() {
    let a = arena().await;
    let stored = a.w.storage.backends().await.unwrap();
    assert_eq!(stored.len(), 2);
    for b in &stored {
        assert!(!b.config.contains("evil-backend-secret"), "{}", b.config);
        let v: Value = serde_json::from_str(&b.config).unwrap();
        let sealed = v["auth"]["token"]["sealed"].as_str().unwrap_or_default();
        assert!(
            sealed.starts_with("v1:"),
            "{} stores its credential in clear: {v}",
            b.name
        );
    }
    // Read back, the credential still works.
    a.attack("http", &a.server.url("/headers")).await.unwrap();
    assert!(
        a.server
            .last_headers
            .lock()
            .unwrap()
            .contains(&"authorization: Bearer evil-backend-secret".to_string())
    );
}

#[tokio::test]
async fn a_credential_from_a_file_is_read_again_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evil.token");
    std::fs::write(&file, "first-token\n").unwrap();
    let a = arena_with({
        let file = file.clone();
        move |v| v["auth"] = json!({"type": "bearer", "token": {"file": file}})
    })
    .await;
    let seen = |s: &Server, token: &str| {
        s.last_headers
            .lock()
            .unwrap()
            .contains(&format!("authorization: Bearer {token}"))
    };
    a.attack("http", &a.server.url("/headers")).await.unwrap();
    assert!(seen(&a.server, "first-token"));
    let stored = a.w.storage.backends().await.unwrap();
    let evil = stored.iter().find(|b| b.name == "evil").unwrap();
    assert!(!evil.config.contains("first-token"), "{}", evil.config);
    std::fs::write(&file, "rotated-token\n").unwrap();
    a.w.node.sync.reload();
    a.attack("http", &a.server.url("/headers")).await.unwrap();
    assert!(
        seen(&a.server, "rotated-token"),
        "the reload read the file again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_show_prints_guest_text_inert() {
    // A job whose guest logs and fails with text that tries to fake a line
    // of the outbound-HTTP section and rewrite the terminal, shown by the
    // real CLI against the real API.
    let a = arena().await;
    let forged =
        "ok\n  try 1 GET http://127.0.0.1:1/ok → 200 (1 ms, 0 B)\u{1b}[2K\u{1b}[1A\r\u{202e}";
    let mut spec = JobSpec::new(
        junction_runtime::sync::IMPORT_RECORD,
        json!({"model": "print", "external_id": forged}),
    );
    spec.backend = Some("evil".into());
    spec.request.max_retries = Some(1);
    let id = a.w.node.queue.enqueue(spec).await.unwrap().id;
    a.w.settle().await;
    assert_eq!(
        a.w.storage.job(id).await.unwrap().unwrap().state,
        JobState::Failed
    );

    const TOKEN: &str = "hostile-test-token-0123456789";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        junction_runtime::api::app(junction_runtime::api::ApiState::new(&a.w.node, TOKEN, None));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["--server", &addr.to_string(), "--token", TOKEN])
            .args(["jobs", "show", &id.to_string()])
            .env_remove("JUNCTION_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    server.abort();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("print"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached the terminal: {text:?}"
    );
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("  try 1 GET")),
        "a forged audit line: {text}"
    );
    assert!(text.contains("\\n  try 1 GET"), "{text}");
}

#[tokio::test]
async fn another_connector_taking_over_a_backend_needs_approval_for_more() {
    // probe-plus covers evil's version more narrowly, so the registry
    // would hand it evil's credential and data; it requests more than the
    // probe serving evil now.
    let a = arena().await;
    let plus = std::fs::read(junction_test_artifacts::PROBE_PLUS).unwrap();
    let err = a.w.node.sync.install(&plus).await.unwrap_err();
    let SyncError::NeedsApproval {
        more,
        digest,
        active,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert!(
        active.contains("probe 0.1.0") && active.contains("evil"),
        "{active}"
    );
    assert!(
        more.lines().contains(&"secret api_key".to_string()),
        "{err}"
    );
    assert!(a.evil().await.adapter_labels().starts_with("probe 0.1.0"));
    a.w.node
        .sync
        .activate_connector(digest, true)
        .await
        .unwrap();
    assert!(
        a.evil()
            .await
            .adapter_labels()
            .starts_with("probe-plus 0.2.0")
    );
}

#[tokio::test]
async fn a_version_that_requests_more_needs_approval_even_with_no_backend_yet() {
    // No backend uses the connector: the active version's requests are
    // what the operator approved, and a new version may not widen them.
    let (_dir, _storage, node) = crate::sync::fresh_node().await;
    let probe = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    let greedy = std::fs::read(junction_test_artifacts::PROBE_GREEDY).unwrap();
    node.sync.install(&probe).await.unwrap();
    let err = node.sync.install(&greedy).await.unwrap_err();
    assert!(
        matches!(&err, SyncError::NeedsApproval { active, .. } if active == "probe 0.1.0"),
        "{err}"
    );
    // Going back to a version that requests less needs nothing.
    let SyncError::NeedsApproval { digest, .. } = &err else {
        unreachable!()
    };
    node.sync.activate_connector(digest, true).await.unwrap();
    let first = node.sync.install(&probe).await.unwrap();
    assert!(first.active);
}

#[tokio::test]
async fn guest_chosen_hosts_never_become_metric_labels() {
    let a = arena().await;
    for i in 0..20 {
        let host = format!("http://attacker-{i}.example.com/x");
        assert!(a.attack("http", &host).await.is_err(), "{host} was allowed");
    }
    let mut text = String::new();
    junction_runtime::metrics::global().render(&mut text, &|d| (d.into(), String::new()));
    let denied: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("junction_outbound_denied_total{"))
        .collect();
    assert!(
        denied.iter().any(|l| l.contains("backend=\"evil\"")),
        "{text}"
    );
    assert!(
        !text.contains("attacker-"),
        "a guest-chosen label: {denied:?}"
    );
}

#[tokio::test]
async fn a_connector_cannot_move_the_hosts_import_cursor() {
    let a = arena().await;
    let key = junction_runtime::sync::batch::cursor_key("echo");
    a.w.storage
        .state_set("evil", &key, "2026-01-01T00:00:00Z", 1, None)
        .await
        .unwrap();
    // The guest writes the host's key name: it lands in its own namespace.
    let answer = a
        .answer("state-set", &format!("{key}=2099-01-01T00:00:00Z"))
        .await;
    assert_eq!(answer["ok"], "", "{answer}");
    assert_eq!(
        a.w.storage
            .state_get("evil", &key)
            .await
            .unwrap()
            .as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
}

#[tokio::test]
async fn a_connectors_state_is_bounded_in_keys_and_bytes() {
    let a =
        arena_with(|v| v["limits"] = json!({"max_state_keys": 50, "max_state_bytes": 1_000_000}))
            .await;
    refused(&a.answer("state-set", "500*10").await, "max_state_keys");
    let a =
        arena_with(|v| v["limits"] = json!({"max_state_keys": 1000, "max_state_bytes": 100_000}))
            .await;
    refused(&a.answer("state-set", "100*10000").await, "max_state_bytes");
    // Other backends keep working: shop's batch import still runs.
    a.w.run(vec![crate::sync::batch("product")]).await;
    assert!(a.w.failed().await.is_empty());
}

#[tokio::test]
async fn a_reconfigured_backends_listener_runs_with_the_new_grants() {
    let a = arena().await;
    let exports_for_evil = || async {
        a.w.jobs(junction_runtime::sync::EXPORT_RECORD)
            .await
            .into_iter()
            .filter(|j| j.backend.as_deref() == Some("evil"))
            .count()
    };
    let write = |id: &str| junction_runtime::storage::RecordWrite {
        model: "echo".into(),
        id: id.into(),
        data: json!({"n": 1}).to_string(),
        expected_version: None,
        origin_backend: None,
        bind: None,
        keys: None,
    };
    a.w.node.bus.put_record(&write("e1")).await.unwrap();
    a.w.settle().await;
    assert_eq!(
        exports_for_evil().await,
        1,
        "the listener hears echo events"
    );
    // The operator takes the events away; the listener must follow at once.
    a.w.node
        .sync
        .configure(&evil_config(&a.server, &a.other, |v| {
            v["grants"] = json!({"events": []})
        }))
        .await
        .unwrap();
    a.w.node.bus.put_record(&write("e2")).await.unwrap();
    a.w.settle().await;
    assert_eq!(
        exports_for_evil().await,
        1,
        "an event outside the new grant"
    );
}

#[tokio::test]
async fn a_failing_or_looping_listener_never_holds_up_another_backends_events() {
    // `evil`'s listener loops until its (short) deadline or panics on these
    // events; `calm`, served by the same probe, hears the same events.
    let a = arena_with(|v| v["limits"] = json!({"deadline": 1500})).await;
    let calm = Server::start().await;
    let config: BackendConfig = serde_json::from_value(json!({
        "name": "calm",
        "kind": "probe",
        "version": "1.2.0",
        "base_url": calm.origin(),
        "allow_internal": [calm.addr.to_string()],
        "auth": {"type": "bearer", "token": "calm-backend-secret"},
    }))
    .unwrap();
    a.w.node.sync.configure(&config).await.unwrap();
    let write = |id: &str, data: Value| junction_runtime::storage::RecordWrite {
        model: "echo".into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: None,
        origin_backend: None,
        bind: None,
        keys: None,
    };
    // More looping deliveries than the node has workers.
    for i in 0..6 {
        a.w.node
            .bus
            .put_record(&write(&format!("s{i}"), json!({"spin": "evil"})))
            .await
            .unwrap();
    }
    a.w.node
        .bus
        .put_record(&write("p1", json!({"panic": "evil"})))
        .await
        .unwrap();
    // Every event reaches calm's listener while evil's fail: calm's
    // exports are enqueued within a few deadlines.
    let of = |jobs: Vec<Job>, backend: &str| -> Vec<Job> {
        jobs.into_iter()
            .filter(|j| j.backend.as_deref() == Some(backend))
            .collect()
    };
    let mut calm_exports = 0;
    for _ in 0..400 {
        calm_exports = of(
            a.w.jobs(junction_runtime::sync::EXPORT_RECORD).await,
            "calm",
        )
        .len();
        if calm_exports == 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(calm_exports, 7, "calm heard every event within 20 s");
    // Evil's deliveries failed on their own and wait out a back-off (no
    // retry storm), each with a bounded number of tries left. Each one is
    // looked at when it is first seen waiting after a failed try: on a
    // loaded machine the first to fail may be due again before the last
    // has had its first try, so all seven need not wait at one moment.
    let mut waiting = std::collections::BTreeMap::new();
    for _ in 0..600 {
        for j in of(a.w.jobs(junction_runtime::sync::DELIVER).await, "evil") {
            if j.tries >= 1 && j.state == JobState::Pending {
                waiting.entry(j.id).or_insert(j);
            }
        }
        if waiting.len() == 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(waiting.len(), 7, "{waiting:#?}");
    for j in waiting.values() {
        // The back-off starts at 5 s and doubles (±20 %): when first seen
        // waiting, even on a loaded machine, no delivery has had more than
        // three tries (without a back-off, each try follows the last at once).
        assert!(j.tries <= 3, "no retry storm: {j:?}");
        assert_eq!(j.max_retries, junction_runtime::sync::LISTENER_TRIES);
        assert!(
            j.eta >= j.started_at.unwrap() + 3_000,
            "retried after a back-off: {j:?}"
        );
        let kind = j.error_kind.as_deref().unwrap();
        assert!(kind == "deadline" || kind == "trap", "{j:?}");
    }
}

#[tokio::test]
async fn a_connectors_jobs_are_bounded_live_and_per_minute() {
    // No room for live jobs: every enqueue is refused with the quota named.
    let a = arena_with(|v| v["limits"] = json!({"max_pending_jobs": 0})).await;
    let v = a.answer("enqueue-many", "3").await;
    assert_eq!(v["ok"], 0, "{v}");
    assert!(
        v["err"].as_str().unwrap().contains("max_pending_jobs"),
        "{v}"
    );
    // Two a minute: the third is refused, whatever became of the first two.
    let a = arena_with(|v| v["limits"] = json!({"max_jobs_per_minute": 2})).await;
    let v = a.answer("enqueue-many", "3").await;
    assert_eq!(v["ok"], 2, "{v}");
    assert!(
        v["err"].as_str().unwrap().contains("max_jobs_per_minute"),
        "{v}"
    );
    let mut body = String::new();
    junction_runtime::metrics::global().render(&mut body, &|d| (d.into(), String::new()));
    assert!(
        body.contains(r#"junction_quota_refusals_total{backend="evil",quota="jobs-per-minute"}"#),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_ends_dead_and_the_operator_retries_or_discards_it() {
    // evil's listener panics on one event; its retries are quick here.
    let a = arena_with(|v| v["retry"] = json!({"base": 10, "cap": 20})).await;
    let app = crate::api::router(&a.w);
    let (hook, url) = crate::repair::Hook::start().await;
    a.w.node.queue.notify.set(
        junction_runtime::queue::notify::GLOBAL,
        Some(serde_json::from_value(json!({"url": url, "interval": 1000})).unwrap()),
    );
    let write = |id: &str, data: Value| junction_runtime::storage::RecordWrite {
        model: "echo".into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: None,
        origin_backend: None,
        bind: None,
        keys: None,
    };
    a.w.node
        .bus
        .put_record(&write("poison", json!({"panic": "evil"})))
        .await
        .unwrap();
    a.w.node
        .bus
        .put_record(&write("fine", json!({"n": 1})))
        .await
        .unwrap();
    let dead = || async {
        let (_, v) = crate::api::call(
            &app,
            "GET",
            "/api/v1/events/dead?backend=evil",
            Some(crate::api::TOKEN),
            None,
        )
        .await;
        v["items"].as_array().cloned().unwrap_or_default()
    };
    let mut items = Vec::new();
    for _ in 0..300 {
        items = dead().await;
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(items.len(), 1, "{items:?}");
    let d = &items[0];
    assert_eq!(
        (&d["model"], &d["local_id"], &d["tries"]),
        (
            &json!("echo"),
            &json!("poison"),
            &json!(junction_runtime::sync::LISTENER_TRIES)
        ),
        "{d}"
    );
    // The event behind it was delivered: evil's export of "fine" exists.
    a.w.settle().await;
    let exports = a.w.jobs(junction_runtime::sync::EXPORT_RECORD).await;
    assert!(
        exports
            .iter()
            .any(|j| j.backend.as_deref() == Some("evil") && j.args.contains("fine")),
        "{exports:?}"
    );
    let metrics = |app: axum::Router| async move {
        let (_, v) = crate::api::call(&app, "GET", "/metrics", Some(crate::api::TOKEN), None).await;
        v.as_str().unwrap().to_string()
    };
    assert!(
        metrics(app.clone())
            .await
            .contains("\njunction_dead_events 1\n")
    );
    let post = |path: &'static str, body: Value| {
        let app = app.clone();
        async move {
            crate::api::call(
                &app,
                "POST",
                path,
                Some(crate::api::TOKEN),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
        }
    };
    let job = d["job"].as_i64().unwrap();
    // The operator is told, naming the delivery.
    let calls = hook.until(1).await;
    let told: Vec<&Value> = calls
        .iter()
        .flat_map(|c| c.2["notifications"].as_array().unwrap().iter())
        .filter(|n| n["kind"] == "event-dead")
        .collect();
    assert_eq!(told.len(), 1, "{calls:?}");
    assert_eq!(told[0]["subject"], format!("job {job}"));
    assert_eq!(told[0]["backend"], "evil");
    // Only dead deliveries can be named.
    let export = exports[0].id;
    let (status, v) = post("/api/v1/events/dead/retry", json!({"jobs": [export]})).await;
    assert_eq!(status, axum::http::StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "not_dead_event", "{v}");
    // Retried, it is delivered again (and, still poison, dies again).
    let (_, v) = post(
        "/api/v1/events/dead/retry",
        json!({"backend": "evil", "dry_run": true}),
    )
    .await;
    assert_eq!(
        (&v["matched"], &v["changed"]),
        (&json!(1), &json!(0)),
        "{v}"
    );
    let (_, v) = post("/api/v1/events/dead/retry", json!({"jobs": [job]})).await;
    assert_eq!(v["changed"], 1, "{v}");
    let j = a.w.storage.job(job).await.unwrap().unwrap();
    assert_ne!(j.state, JobState::Failed, "requeued: {j:?}");
    let mut again = Vec::new();
    for _ in 0..300 {
        again = dead().await;
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(again.len(), 1, "dead again");
    // Discarded, it is gone from the list and the gauge.
    let (_, v) = post("/api/v1/events/dead/discard", json!({"jobs": [job]})).await;
    assert_eq!(v["changed"], 1, "{v}");
    assert!(dead().await.is_empty());
    assert!(
        metrics(app.clone())
            .await
            .contains("\njunction_dead_events 0\n")
    );
    let j = a.w.storage.job(job).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Cancelled, "{j:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_a_backend_nothing_serves_yet_wait_for_it() {
    let w = world().await;
    w.import_all().await;
    let (server, other) = (Server::start().await, Server::start().await);
    // Configured before its connector is installed (as a config file may).
    let unresolved = w
        .node
        .sync
        .store_backend(&evil_config(&server, &other, |_| {}))
        .await
        .unwrap();
    assert!(unresolved.is_some(), "no connector serves kind probe yet");
    let write = junction_runtime::storage::RecordWrite {
        model: "echo".into(),
        id: "early".into(),
        data: json!({"n": 1}).to_string(),
        expected_version: None,
        origin_backend: None,
        bind: None,
        keys: None,
    };
    w.node.bus.put_record(&write).await.unwrap();
    // Its delivery waits, spending no try.
    let mut waiting = Vec::new();
    for _ in 0..100 {
        waiting = w.jobs(junction_runtime::sync::DELIVER).await;
        if waiting
            .iter()
            .any(|j| j.error_kind.as_deref() == Some("unresolved"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let delivery = waiting
        .iter()
        .find(|j| j.backend.as_deref() == Some("evil"))
        .unwrap_or_else(|| panic!("a delivery for evil: {waiting:?}"));
    assert_eq!(
        (
            delivery.state,
            delivery.tries,
            delivery.error_kind.as_deref()
        ),
        (JobState::Pending, 0, Some("unresolved")),
        "{delivery:?}"
    );
    // The connector arrives: the event reaches its listener.
    let probe = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    w.node.sync.install(&probe).await.unwrap();
    let mut exported = false;
    for _ in 0..300 {
        exported = w
            .jobs(junction_runtime::sync::EXPORT_RECORD)
            .await
            .iter()
            .any(|j| j.backend.as_deref() == Some("evil") && j.args.contains("early"));
        if exported {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        exported,
        "the early event reached evil's listener once it resolved"
    );
}

/// Backend `evil`'s webhook `attack`, signed with its secret, carrying the
/// job requests `jobs` (which the probe returns as they are).
async fn webhook_attack(a: &Arena, jobs: Value) -> (axum::http::StatusCode, Value) {
    use junction_runtime::api::hooks::WebhookSettings;
    let state = junction_runtime::api::ApiState::new(&a.w.node, "token", None);
    state.set_webhooks(WebhookSettings {
        enabled: true,
        ..WebhookSettings::default()
    });
    let body = jobs.to_string();
    let at = junction_runtime::queue::now_ms() / 1000;
    let router = junction_runtime::api::app(state);
    crate::adoption::hook(
        &router,
        "/hooks/evil/attack",
        &crate::adoption::signed("evil-hook", at, &body),
        &body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_cannot_enqueue_jobs_for_another_backend_or_outside_its_grants() {
    let a = arena_with(|v| v["webhooks"] = json!({"secret": "evil-hook"})).await;
    let before = a.shop_snapshot().await;
    let jobs_before = a.all_jobs().await.len();
    for (attack, refusal) in [
        (
            json!({"function": "junction.import-record",
                   "args": {"backend": "shop", "model": "product", "external_id": "1"}}),
            "runs for backend \"evil\"",
        ),
        (
            json!({"function": "junction.import-record",
                   "args": {"model": "product", "external_id": "1"}}),
            "product",
        ),
        (
            json!({"function": "junction.import-record",
                   "args": {"model": "echo", "external_id": "1"}, "channel": "root.shop"}),
            "outside this backend's channels",
        ),
        (
            json!({"function": "junction.sleep", "args": {"ms": 1}}),
            "not one a connector may enqueue",
        ),
    ] {
        // A good job beside the bad one: all or nothing.
        let good = json!({"function": "junction.import-record",
                          "args": {"model": "echo", "external_id": "2"}});
        let (status, v) = webhook_attack(&a, json!([good, attack])).await;
        assert_eq!(
            status,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "{attack}: {v}"
        );
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(refusal), "{attack}: {message}");
    }
    assert_eq!(
        a.all_jobs().await.len(),
        jobs_before,
        "nothing was enqueued"
    );
    // Its own jobs go through, for its own backend.
    let (status, v) = webhook_attack(
        &a,
        json!([{"function": "junction.import-record",
                "args": {"model": "echo", "external_id": "3"}}]),
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::ACCEPTED, "{v}");
    let id = v["jobs"][0]["id"].as_i64().unwrap();
    let job = a.w.storage.job(id).await.unwrap().unwrap();
    assert_eq!(job.backend.as_deref(), Some("evil"));
    assert_eq!(a.shop_snapshot().await, before, "shop untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_panics_fails_its_job_naming_the_trap_and_the_next_task_runs() {
    let a = arena().await;
    let task = |name: &str| {
        let mut spec = JobSpec::new(
            junction_runtime::sync::TASK,
            json!({"task": name, "args": {"n": 1}}),
        )
        .max_retries(1);
        spec.backend = Some("evil".into());
        spec
    };
    let panicked = a.w.node.queue.enqueue(task("panic")).await.unwrap().id;
    let echoed = a.w.node.queue.enqueue(task("echo")).await.unwrap().id;
    a.w.settle().await;
    let job = a.w.storage.job(panicked).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let message = job.error_message.unwrap_or_default();
    assert!(
        message.contains("running task panic") && message.contains("panics on purpose"),
        "{message}"
    );
    let job = a.w.storage.job(echoed).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.result.as_deref(), Some(r#"task echo: echo {"n":1}"#));
}

/// `/metrics` counts what an operator is paged for: a guest's trap, a
/// sandbox limit it broke, an outbound request the host refused, and a
/// queue whose oldest due job waits (here behind its paused backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_lag_traps_limit_breaches_and_denials() {
    let a = arena().await;
    let app = crate::api::router(&a.w);
    assert!(a.attack("panic", "m1").await.is_err(), "the panic traps");
    assert!(
        a.attack("loop", "m2").await.is_err(),
        "the loop breaks a limit"
    );
    assert!(
        a.attack("http", "http://not-allowed.example.com/x")
            .await
            .is_err(),
        "the host is refused"
    );
    // A job due a minute ago that nothing may start: its backend is paused.
    a.w.node
        .queue
        .set_paused(
            junction_runtime::queue::pause::PauseKind::Backend,
            "evil",
            true,
        )
        .await
        .unwrap();
    let now = junction_runtime::queue::now_ms();
    a.w.storage
        .enqueue(
            &[junction_runtime::queue::job::NewJob {
                function: "junction.noop".into(),
                args: "{}".into(),
                backend: Some("evil".into()),
                priority: 10,
                eta: now - 60_000,
                channel: "root".into(),
                identity_key: None,
                max_retries: 0,
                description: None,
                parents: Vec::new(),
                record: None,
            }],
            now - 60_000,
        )
        .await
        .unwrap();
    let (status, text) =
        crate::api::call(&app, "GET", "/metrics", Some(crate::api::TOKEN), None).await;
    assert_eq!(status, axum::http::StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |metric: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Gauge(n) => n,
                _ => 0.0,
            })
            .sum()
    };
    let digest = a
        .evil()
        .await
        .route("panic")
        .unwrap()
        .adapter
        .digest()
        .to_string();
    assert!(
        value("junction_sandbox_traps_total", ("digest", &digest)) >= 1.0,
        "no trap counted for {digest}:\n{text}"
    );
    assert!(
        value("junction_sandbox_limit_breaches_total", ("digest", &digest)) >= 1.0,
        "no limit breach counted for {digest}:\n{text}"
    );
    assert!(
        value("junction_outbound_denied_total", ("backend", "evil")) >= 1.0,
        "no denial counted:\n{text}"
    );
    assert!(
        value("junction_queue_lag_seconds", ("channel", "root")) >= 59.0,
        "the waiting job's lag:\n{text}"
    );
}
