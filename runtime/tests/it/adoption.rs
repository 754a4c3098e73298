//! Existing records, pushed changes and the connector's own jobs, against
//! demo-shop and the Magento connector: a second shop's customers and
//! products adopted by email and SKU instead of duplicated (and a record
//! matching two local records refused, both named); a local product the
//! shop already has found by SKU and written instead of created; a change
//! in the shop arriving through its signed webhook in under a second with
//! no schedule; every unsigned, stale, replayed, oversized or unknown
//! webhook call refused with nothing enqueued; and the connector's
//! `ship-order` task run as a job.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use junction_demo_shop::{Shop, ShopConfig};
use junction_runtime::api::hooks::{SIGNATURE, TIMESTAMP, WebhookSettings, sign};
use junction_runtime::api::{ApiState, app};
use junction_runtime::backend::BackendWebhooks;
use junction_runtime::capabilities::egress::Secret;
use junction_runtime::queue::JobSpec;
use junction_runtime::queue::job::{Job, JobState};
use junction_runtime::sync::batch::batch_job;
use junction_runtime::sync::{EXPORT_RECORD, IMPORT_RECORD, TASK};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::sync::{World, backend, batch, import, sku, small, world, world_with};

const SECRET: &str = "whsec-test";

impl World {
    /// Run `spec` (for `backend`) to its end; the job as it ended.
    async fn finished(&self, backend: &str, mut spec: JobSpec) -> Job {
        spec.backend = Some(backend.to_string());
        let id = self.node.queue.enqueue(spec).await.unwrap().id;
        self.settle().await;
        self.storage.job(id).await.unwrap().unwrap()
    }

    async fn count(&self, model: &str) -> usize {
        self.storage
            .records(model, None, 10_000)
            .await
            .unwrap()
            .len()
    }

    async fn local_id(&self, backend: &str, model: &str, external_id: &str) -> Option<String> {
        self.storage
            .binding_to_local(backend, model, external_id)
            .await
            .unwrap()
    }

    /// Backend `shop` again, now taking webhooks signed with [`SECRET`].
    async fn take_webhooks(&self) {
        let mut config = backend(&self.shop, "2.4.6");
        config.webhooks = Some(BackendWebhooks {
            secret: Secret::new(SECRET),
        });
        self.node.sync.configure(&config).await.unwrap();
    }
}

/// Another shop with the same seed (the same customers and products), as
/// backend `shop2` of the world's node.
async fn second_shop(w: &World) -> Shop {
    let shop2 = super::sync::small_shop().await;
    let mut config = backend(&shop2, "2.4.6");
    config.name = "shop2".into();
    w.node.sync.configure(&config).await.unwrap();
    shop2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_shops_customers_and_products_are_adopted_by_email_and_sku_not_duplicated() {
    let w = world().await;
    w.import_all().await;
    let (customers, products) = (w.count("customer").await, w.count("product").await);
    assert_eq!((customers, products), (12, 40));
    let _shop2 = second_shop(&w).await;
    w.run(vec![
        batch_job("shop2", "customer", false),
        batch_job("shop2", "product", false),
    ])
    .await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert_eq!(
        w.count("customer").await,
        customers,
        "no customer duplicated"
    );
    assert_eq!(w.count("product").await, products, "no product duplicated");
    for id in 1..=12 {
        let id = id.to_string();
        assert_eq!(
            w.local_id("shop2", "customer", &id).await,
            w.local_id("shop", "customer", &id).await,
            "customer {id} of both shops is one local record"
        );
    }
    assert_eq!(
        w.local_id("shop2", "product", &sku(9)).await,
        w.local_id("shop", "product", &sku(9)).await
    );
    let adopted = w
        .jobs(IMPORT_RECORD)
        .await
        .into_iter()
        .filter(|j| j.backend.as_deref() == Some("shop2"))
        .filter(|j| {
            j.result
                .as_deref()
                .is_some_and(|r| r.starts_with("adopted local record"))
        })
        .count();
    assert_eq!(adopted, 52, "every record of shop2 was adopted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_matching_two_local_records_by_key_fails_naming_both_and_adopts_nothing() {
    let w = world().await;
    w.run(vec![batch("customer")]).await;
    // Customer 2 takes customer 1's email in the shop and is synced again:
    // two local customers now hold that email.
    let email = w.shop.customer(1).unwrap()["email"].clone();
    assert!(w.shop.edit_customer(2, |c| c["email"] = email.clone()));
    w.run(vec![import("customer", "2")]).await;
    let (first, second) = (
        w.local_id("shop", "customer", "1").await.unwrap(),
        w.local_id("shop", "customer", "2").await.unwrap(),
    );
    let _shop2 = second_shop(&w).await;
    let job = w
        .finished("shop2", import_of("shop2", "customer", "1"))
        .await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let message = job.error_message.unwrap_or_default();
    let email = email.as_str().unwrap();
    assert!(
        message.contains(&format!("{first} (email={email})"))
            && message.contains(&format!("{second} (email={email})"))
            && message.contains("merge the duplicates"),
        "{message}"
    );
    assert_eq!(w.local_id("shop2", "customer", "1").await, None);
    assert_eq!(w.count("customer").await, 12, "nothing created either");
}

fn import_of(backend: &str, model: &str, id: &str) -> JobSpec {
    JobSpec::new(
        IMPORT_RECORD,
        json!({"backend": backend, "model": model, "external_id": id}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_product_the_shop_already_has_is_found_by_sku_and_written_not_created() {
    let w = world().await;
    // Made locally (by another backend's import, say), never synced here.
    w.node
        .bus
        .put_record(&junction_runtime::storage::RecordWrite {
            model: "product".into(),
            id: "p-local".into(),
            data: json!({"sku": sku(5), "name": "Bag", "price": 99.5, "stock": 3}).to_string(),
            expected_version: Some(0),
            origin_backend: None,
            bind: None,
            keys: None,
        })
        .await
        .unwrap();
    let job = w
        .finished(
            "shop",
            JobSpec::new(
                EXPORT_RECORD,
                json!({"backend": "shop", "model": "product", "local_id": "p-local"}),
            ),
        )
        .await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let result = job.result.unwrap_or_default();
    assert!(
        result.starts_with(&format!("adopted product {} in shop", sku(5))),
        "{result}"
    );
    assert_eq!(
        w.local_id("shop", "product", &sku(5)).await.as_deref(),
        Some("p-local")
    );
    assert_eq!(w.shop.product(&sku(5)).unwrap()["price"], json!(99.5));
    // The export stored the record's key: a second shop's product with
    // that SKU is adopted into it too.
    let _shop2 = second_shop(&w).await;
    let job = w
        .finished("shop2", import_of("shop2", "product", &sku(5)))
        .await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(
        w.local_id("shop2", "product", &sku(5)).await.as_deref(),
        Some("p-local")
    );
    assert_eq!(w.count("product").await, 1);
}

/// The world's node serving its API on a loopback socket with webhook
/// intake on; a shop sending its webhooks there, signed with [`SECRET`].
async fn pushed() -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let w = world_with(
        ShopConfig {
            seed: small(),
            webhook: Some(junction_demo_shop::WebhookTarget {
                url: format!("http://{addr}/hooks/shop/changes"),
                secret: SECRET.into(),
            }),
            ..ShopConfig::default()
        },
        "2.4.6",
    )
    .await;
    w.take_webhooks().await;
    let state = ApiState::new(&w.node, "token", None);
    state.set_webhooks(WebhookSettings {
        enabled: true,
        ..WebhookSettings::default()
    });
    tokio::spawn(axum::serve(listener, app(state)).into_future());
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_the_shop_arrives_through_its_webhook_in_under_a_second_with_no_schedule() {
    let w = pushed().await;
    w.import_all().await;
    assert!(backend(&w.shop, "2.4.6").schedules.is_empty());
    let started = Instant::now();
    assert!(
        w.shop
            .edit_product(&sku(2), |p| p["name"] = json!("Renamed in the shop"))
    );
    loop {
        if w.local("product", &sku(2)).await["name"] == "Renamed in the shop" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the change never arrived; webhooks sent: {:?}",
            w.shop.webhooks_sent()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "arrived after {took:?}");
    // A product deleted in the shop is deleted locally, checked first.
    let gone = w.local_id("shop", "product", &sku(3)).await.unwrap();
    assert!(w.shop.remove_product(&sku(3)));
    for _ in 0..500 {
        if w.storage.record("product", &gone).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(w.storage.record("product", &gone).await.unwrap().is_none());
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let sent = w.shop.webhooks_sent().unwrap();
    assert_eq!((sent.delivered, sent.failed), (2, 0), "{sent:?}");
}

/// POST `body` to the intake with `headers`; the status and answer.
pub(crate) async fn hook(
    router: &axum::Router,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What a refused call is, how it was sent, and the answer it must get.
type Refusal = (&'static str, Headers, String, StatusCode, &'static str);
pub(crate) type Headers = Vec<(&'static str, String)>;

/// The signature headers of `body` sent at `at` with `secret`.
pub(crate) fn signed(secret: &str, at: i64, body: &str) -> Headers {
    vec![
        (TIMESTAMP, at.to_string()),
        (
            SIGNATURE,
            sign(secret.as_bytes(), &at.to_string(), body.as_bytes()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_call_is_taken_only_signed_fresh_once_small_and_named_and_nothing_else_is_enqueued()
 {
    let w = world().await;
    let state = ApiState::new(&w.node, "token", None);
    let router = app(state.clone());
    let body = json!({"entity": "product", "id": sku(1), "event": "updated"}).to_string();
    let now = junction_runtime::queue::now_ms() / 1000;
    let path = "/hooks/shop/changes";
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_string();
    // Off until the node's configuration turns it on.
    let (status, v) = hook(&router, path, &signed(SECRET, now, &body), &body).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::NOT_FOUND, "webhooks_off".into())
    );
    state.set_webhooks(WebhookSettings {
        enabled: true,
        max_body_bytes: 1024,
        ..WebhookSettings::default()
    });
    // A backend without a webhook secret takes none.
    let (status, v) = hook(&router, path, &signed(SECRET, now, &body), &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhooks.secret"),
        "{v}"
    );
    w.take_webhooks().await;
    let refused: Vec<Refusal> = vec![
        (
            "unsigned",
            vec![],
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "signed with another secret",
            signed("guess", now, &body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "a signature of another body",
            signed(SECRET, now, "{}"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "signed ten minutes ago",
            signed(SECRET, now - 600, &body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "over the body cap",
            signed(SECRET, now, &"x".repeat(2000)),
            "x".repeat(2000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (what, headers, text, want, want_code) in refused {
        let (status, v) = hook(&router, path, &headers, &text).await;
        assert_eq!(
            (status, code(&v)),
            (want, want_code.to_string()),
            "{what}: {v}"
        );
    }
    // A backend that does not exist.
    let (status, v) = hook(
        &router,
        "/hooks/nope/changes",
        &signed(SECRET, now, &body),
        &body,
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::NOT_FOUND, "not_found".into()),
        "{v}"
    );
    // A name the connector does not declare.
    let (status, v) = hook(
        &router,
        "/hooks/shop/orders",
        &signed(SECRET, now, &body),
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        w.jobs(IMPORT_RECORD).await.is_empty(),
        "a refused call enqueues nothing"
    );
    // Signed, fresh, small, named: one import job; sent again, refused.
    let headers = signed(SECRET, now, &body);
    let (status, v) = hook(&router, path, &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    let (status, v) = hook(&router, path, &headers, &body).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::CONFLICT, "replayed".into())
    );
    assert_eq!(w.jobs(IMPORT_RECORD).await.len(), 1);
    // A body the connector cannot read is its refusal, not a crash.
    let junk = "not json";
    let (status, v) = hook(&router, path, &signed(SECRET, now, junk), junk).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "refused".into()),
        "{v}"
    );
    assert_eq!(w.jobs(IMPORT_RECORD).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connectors_ship_order_task_runs_as_a_job_and_an_unknown_task_is_refused_by_name() {
    let w = world().await;
    w.import_all().await;
    let order = (1..=15)
        .find(|i| w.shop.order(*i).unwrap()["state"] != "canceled")
        .unwrap();
    let local = w
        .local_id("shop", "order", &order.to_string())
        .await
        .unwrap();
    let task = |name: &str, args: Value| {
        JobSpec::new(TASK, json!({"backend": "shop", "task": name, "args": args}))
    };
    let job = w
        .finished(
            "shop",
            task(
                "ship-order",
                json!({"order": local, "track_number": "1Z999AA10123456784", "carrier": "ups"}),
            ),
        )
        .await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(
        job.result
            .as_deref()
            .unwrap_or_default()
            .starts_with(&format!("task ship-order: shipped order {order}")),
        "{job:?}"
    );
    let shipped = w.shop.order(order).unwrap();
    assert_eq!(shipped["tracks"][0]["track_number"], "1Z999AA10123456784");
    assert_eq!(shipped["state"], "complete");
    // Its HTTP call is in the job's audit, like any sync job's.
    let audit = w.storage.job_audit(job.id).await.unwrap();
    assert!(
        audit.iter().any(|a| a.entry.path.ends_with("/ship")),
        "{audit:?}"
    );
    let unknown = w.finished("shop", task("nope", json!({}))).await;
    assert_eq!(unknown.state, JobState::Failed, "{unknown:?}");
    let message = unknown.error_message.unwrap_or_default();
    assert!(
        message.contains("declares a task named nope") && message.contains("ship-order"),
        "{message}"
    );
    // Operators start tasks through the API (and `junction sync task`):
    // a task no connector declares is refused before anything is queued.
    let router = app(ApiState::new(&w.node, "token", None));
    let (status, v) = crate::api::call(
        &router,
        "POST",
        "/api/v1/sync/task",
        Some("token"),
        Some((
            "application/json",
            json!({"backend": "shop", "task": "nope"})
                .to_string()
                .into_bytes(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "unknown_task");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ship-order"),
        "{v}"
    );
    let (status, v) = crate::api::call(
        &router,
        "POST",
        "/api/v1/sync/task",
        Some("token"),
        Some((
            "application/json",
            json!({"backend": "shop", "task": "ship-order",
                   "args": {"order": local, "track_number": "2"}})
            .to_string()
            .into_bytes(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    w.settle().await;
    let job = w
        .storage
        .job(v["jobs"][0]["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(
        w.shop.order(order).unwrap()["tracks"][1]["track_number"],
        "2"
    );
    let bad = w
        .finished("shop", task("ship-order", json!({"order": local})))
        .await;
    assert_eq!(bad.state, JobState::Failed, "{bad:?}");
    assert!(
        bad.error_message
            .unwrap_or_default()
            .contains("track_number"),
        "the connector's refusal names the missing argument"
    );
}
