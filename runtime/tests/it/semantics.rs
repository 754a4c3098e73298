//! Sync semantics for real data: a connector (the probe, serving backend
//! `p`) answering "nothing to do" at each step of an import — read,
//! dependencies, map-import — and the host ending each such job done with
//! the reason, never failed, never retried, nothing written; and edits of
//! one record made while its export waits becoming one export that sends
//! every field they changed (the Magento connector and demo-shop).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use junction_demo_shop::{Faults, Seed, ShopConfig};
use junction_runtime::node::NodeConfig;
use junction_runtime::queue::JobSpec;
use junction_runtime::queue::job::{Job, JobState};
use junction_runtime::queue::pause::PauseKind;
use junction_runtime::sync::batch::batch_job;
use junction_runtime::sync::reconcile::reconcile_job;
use junction_runtime::sync::{DELETE_LOCAL, EXPORT_RECORD, IMPORT_RECORD, RECONCILE};
use serde_json::{Value, json};

use crate::support::Server;
use crate::sync::{
    World, backend, cache_dir, fresh_node_with, node_config, sku, small, world, world_on,
};

/// The shop world plus backend `p`, served by the probe, with `settings`.
async fn probed(settings: Value) -> (World, Server) {
    let w = world().await;
    let server = Server::start().await;
    let probe = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    w.node.sync.install(&probe).await.unwrap();
    let config = serde_json::from_value(json!({
        "name": "p",
        "kind": "probe",
        "version": "1.2.0",
        "base_url": server.origin(),
        "allow_internal": [server.addr.to_string()],
        "settings": settings,
    }))
    .unwrap();
    w.node.sync.configure(&config).await.unwrap();
    (w, server)
}

fn import(id: &str) -> JobSpec {
    let mut spec = JobSpec::new(
        IMPORT_RECORD,
        json!({"backend": "p", "model": "echo", "external_id": id}),
    );
    spec.backend = Some("p".into());
    spec
}

impl World {
    /// Run `spec` to its end; the job as it ended.
    async fn ran(&self, spec: JobSpec) -> Job {
        let id = self.node.queue.enqueue(spec).await.unwrap().id;
        self.settle().await;
        self.storage.job(id).await.unwrap().unwrap()
    }

    async fn bound_in_p(&self, external_id: &str) -> bool {
        self.storage
            .binding_to_local("p", "echo", external_id)
            .await
            .unwrap()
            .is_some()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_from_read_or_map_ends_the_import_done_with_the_reason() {
    let (w, _server) = probed(json!({})).await;
    for (id, reason) in [
        ("skip-read-1", "archived in the backend"),
        ("skip-map-1", "skip-map-1 is not for this store"),
    ] {
        let job = w.ran(import(id)).await;
        assert_eq!(job.state, JobState::Done, "{job:?}");
        assert_eq!(job.tries, 1, "never retried: {job:?}");
        let result = job.result.clone().unwrap_or_default();
        assert!(
            result.starts_with("skipped: ")
                && result.contains(&format!("nothing to do: {reason}"))
                && !result.contains("error"),
            "the job says which step and why: {result}"
        );
        assert!(job.error_message.is_none(), "{job:?}");
        assert!(!w.bound_in_p(id).await, "{id}: nothing was written");
    }
    // A record the connector does not decline is imported as usual.
    let job = w.ran(import("plain-1")).await;
    assert_eq!(job.state, JobState::Done);
    assert!(w.bound_in_p("plain-1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_for_dependencies_means_none_and_a_declined_dependency_is_left_out() {
    let (w, _server) = probed(json!({})).await;
    // "Nothing to do" listing what it needs: it needs nothing.
    let job = w.ran(import("skip-deps-1")).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(w.bound_in_p("skip-deps-1").await, "{job:?}");
    // It needs a record the backend declines: imported without it.
    let job = w.ran(import("needs-1")).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(
        !job.result
            .clone()
            .unwrap_or_default()
            .starts_with("skipped"),
        "{job:?}"
    );
    assert!(w.bound_in_p("needs-1").await);
    assert!(!w.bound_in_p("skip-read-dependency").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_counts_declined_records_as_skipped_and_enqueues_nothing_for_them() {
    // The probe's search finds echo 0 to 4; its mapper declines 1 and 3.
    let (w, _server) = probed(json!({"decline": ["1", "3"]})).await;
    let job = w.ran(batch_job("p", "echo", true)).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let result = job.result.clone().unwrap_or_default();
    assert!(result.contains("2 skipped by the connector"), "{result}");
    for id in ["0", "2", "4"] {
        assert!(w.bound_in_p(id).await, "{id}");
    }
    for id in ["1", "3"] {
        assert!(!w.bound_in_p(id).await, "{id}");
    }
    assert!(
        w.jobs(IMPORT_RECORD).await.is_empty(),
        "no job of its own for a declined record"
    );
    assert!(w.failed().await.is_empty());
}

/// The shop world on a node that runs one job at a time, so that the
/// events' deliveries all run before the exports they enqueue.
async fn one_at_a_time() -> World {
    let (dir, storage, node) = fresh_node_with(|_| NodeConfig {
        concurrency: 1,
        prefetch: 1,
        ..node_config("node-a")
    })
    .await;
    world_on(
        ShopConfig {
            seed: small(),
            ..ShopConfig::default()
        },
        "2.4.6",
        dir,
        storage,
        node,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_concurrent_edits_waiting_to_be_exported_become_one_export_of_every_field() {
    let w = one_at_a_time().await;
    w.import_all().await;
    let sku = "DS-00001";
    let exports_before = w.jobs(EXPORT_RECORD).await.len();
    // The backend is paused: the edits' deliveries and exports wait.
    w.node
        .queue
        .set_paused(PauseKind::Backend, "shop", true)
        .await
        .unwrap();
    let edits: Vec<(&str, Value)> = vec![
        ("price", json!(11.5)),
        ("stock", json!(3)),
        ("price", json!(12.5)),
        ("stock", json!(4)),
        ("price", json!(13.5)),
    ];
    // Five users at once; each retries when another's write got in first.
    let w = Arc::new(w);
    let tasks: Vec<_> = edits
        .into_iter()
        .map(|(field, value)| {
            let w = w.clone();
            tokio::spawn(async move {
                let local_id = w
                    .storage
                    .binding("shop", "product", sku)
                    .await
                    .unwrap()
                    .unwrap()
                    .local_id;
                loop {
                    let value = value.clone();
                    match w
                        .node
                        .bus
                        .edit_record("product", &local_id, |d| d[field] = value)
                        .await
                    {
                        Ok(_) => return,
                        Err(e) if e.to_string().contains("version") => {
                            tokio::task::yield_now().await
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let local = w.local("product", sku).await;
    w.node
        .queue
        .set_paused(PauseKind::Backend, "shop", false)
        .await
        .unwrap();
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let exports: Vec<Job> = w.jobs(EXPORT_RECORD).await;
    assert_eq!(
        exports.len() - exports_before,
        1,
        "five edits waiting together are one export: {exports:?}"
    );
    // The one export sent the last value of every field the edits
    // changed, though its arguments name only the first edit's field.
    let p = w.shop.product(sku).unwrap();
    assert_eq!(p["price"], local["price"], "{p}");
    assert_eq!(
        p["extension_attributes"]["stock_item"]["qty"], local["stock"],
        "{p}"
    );
    assert!(local["price"] != json!(null) && local["stock"] != json!(null));
}

/// `junction queue work` on `db`: a node in its own process.
fn worker(db: &std::path::Path, node: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .args([
            "queue",
            "work",
            "--concurrency",
            "2",
            "--lease-ms",
            "600",
            "--node",
            node,
        ])
        .arg("--database")
        .arg(db)
        .env("JUNCTION_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("junction starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_full_import_resumes_at_the_page_it_reached() {
    // 2,000 products: 20 search pages of the worker's 100; each request
    // slowed so that the scan takes seconds.
    // The key the worker processes find beside the database, so that they
    // open the credentials this node seals.
    let (dir, storage, node) = fresh_node_with(|dir| NodeConfig {
        secret_key: Arc::new(
            junction_runtime::secrets::SecretKey::load_or_create(&dir.join("secret.key")).unwrap(),
        ),
        ..node_config("setup")
    })
    .await;
    let db = dir.path().join("junction.db");
    let seed = Seed {
        products: 2000,
        ..small()
    };
    let w = world_on(
        ShopConfig {
            seed,
            ..ShopConfig::default()
        },
        "2.4.6",
        dir,
        storage.clone(),
        node,
    )
    .await;
    w.run(vec![batch_job("shop", "category", true)]).await;
    let World { shop, node, .. } = w;
    node.stop(Duration::from_secs(5)).await.unwrap();
    shop.set_faults(Faults {
        latency: Duration::from_millis(60),
        ..Faults::default()
    });
    let queue = junction_runtime::queue::Queue::new(
        storage.clone(),
        junction_runtime::queue::QueueConfig::default(),
    );
    queue.register_function(junction_runtime::sync::IMPORT_BATCH);
    let job = queue
        .enqueue(batch_job("shop", "product", true))
        .await
        .unwrap()
        .id;
    let bound = || async {
        storage
            .binding_counts("shop")
            .await
            .unwrap()
            .into_iter()
            .find(|(m, _)| m == "product")
            .map_or(0, |(_, n)| n)
    };

    let mut doomed = worker(&db, "doomed");
    let mut reached = 0;
    for _ in 0..3000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        reached = bound().await;
        if reached >= 500 {
            break;
        }
    }
    doomed.kill().unwrap(); // SIGKILL, mid-scan
    doomed.wait().unwrap();
    assert!(
        (500..2000).contains(&reached),
        "killed midway: {reached} bound"
    );

    let mut survivor = worker(&db, "survivor");
    let mut finished = None;
    for _ in 0..6000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let j = storage.job(job).await.unwrap().unwrap();
        if matches!(j.state, JobState::Done | JobState::Failed) {
            finished = Some(j);
            break;
        }
    }
    crate::cli::signal(&survivor, "TERM");
    survivor.wait().unwrap();
    let finished = finished.expect("the import finished");
    assert_eq!(finished.state, JobState::Done, "{finished:?}");
    assert_eq!(bound().await, 2000, "every product imported");
    let result = finished.result.clone().unwrap_or_default();
    assert!(result.contains("resumed an interrupted run"), "{result}");
    // The try that finished searched only the pages the killed one had
    // not handled (its own audit; the killed try's was lost with it).
    let searches = storage
        .job_audit(job)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| {
            a.try_number == finished.tries && a.entry.path.starts_with("/rest/V1/products?")
        })
        .count();
    let handled_before = reached as usize / 100;
    assert!(
        searches >= 1 && searches <= 20 - handled_before + 1,
        "{searches} searches after {handled_before} pages were handled"
    );
    // The finished scan leaves no resume point behind.
    assert!(
        storage
            .state_get(
                "shop",
                &junction_runtime::sync::batch::resume_key("product")
            )
            .await
            .unwrap()
            .is_none()
    );
}

impl World {
    /// Whether local product `sku` is still there (bound and stored).
    async fn has_product(&self, sku: &str) -> bool {
        match self.storage.binding("shop", "product", sku).await.unwrap() {
            Some(b) => self
                .storage
                .record("product", &b.local_id)
                .await
                .unwrap()
                .is_some(),
            None => false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_deleted_in_the_shop_are_found_by_a_scheduled_reconcile_and_deleted_locally() {
    let w = world().await;
    w.import_all().await;
    assert!(w.shop.remove_product(&sku(3)) && w.shop.remove_product(&sku(7)));
    let mut config = backend(&w.shop, "2.4.6");
    config.schedules = vec![junction_runtime::backend::Schedule {
        model: "product".into(),
        every: Duration::from_secs(3600),
        task: junction_runtime::backend::ScheduleTask::Reconcile,
    }];
    w.node.sync.configure(&config).await.unwrap();
    // The schedule is checked every second; its first run is due at once.
    let mut ran = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ran = w.jobs(RECONCILE).await;
        if !ran.is_empty() {
            break;
        }
    }
    assert_eq!(ran.len(), 1, "one scheduled reconciliation");
    w.settle().await;
    let job = w.storage.job(ran[0].id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let result = job.result.clone().unwrap_or_default();
    assert!(
        result.contains("38 in shop, 40 bound, 2 no longer there: 2 deletions enqueued"),
        "{result}"
    );
    // The connector lists ids alone (`lookup.list-ids`), not whole records.
    let audit = w.storage.job_audit(ran[0].id).await.unwrap();
    assert!(
        !audit.is_empty() && audit.iter().all(|a| a.entry.path.contains("fields")),
        "{audit:?}"
    );
    assert!(!w.has_product(&sku(3)).await && !w.has_product(&sku(7)).await);
    assert!(w.has_product(&sku(1)).await && w.has_product(&sku(4)).await);
    assert_eq!(w.bound("product").await, 38);
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    // A deletion checks first: a record the shop has is kept.
    let mut check = JobSpec::new(
        DELETE_LOCAL,
        json!({"backend": "shop", "model": "product", "external_id": sku(1), "verify": true}),
    );
    check.backend = Some("shop".into());
    let kept = w.ran(check).await;
    assert_eq!(kept.state, JobState::Done, "{kept:?}");
    assert!(
        kept.result.clone().unwrap_or_default().starts_with("kept"),
        "{kept:?}"
    );
    assert!(w.has_product(&sku(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_that_would_delete_too_much_deletes_nothing_until_confirmed() {
    let w = world().await;
    w.import_all().await;
    // Half the catalogue gone, as a backend answering a wrong filter or
    // restored from an old backup would look.
    for i in 1..=20 {
        assert!(w.shop.remove_product(&sku(i)));
    }
    let refused = w.ran(reconcile_job("shop", "product", false)).await;
    assert_eq!(refused.state, JobState::Failed, "{refused:?}");
    let message = refused.error_message.clone().unwrap_or_default();
    assert!(
        message.contains("50% of the bound records")
            && message.contains("max_delete_percent of 10%")
            && message.contains("--confirm"),
        "{message}"
    );
    assert_eq!(w.bound("product").await, 40, "nothing was deleted");
    assert!(w.jobs(DELETE_LOCAL).await.is_empty());
    let confirmed = w.ran(reconcile_job("shop", "product", true)).await;
    assert_eq!(confirmed.state, JobState::Done, "{confirmed:?}");
    w.settle().await;
    assert_eq!(w.bound("product").await, 20);
    assert!(!w.has_product(&sku(1)).await && w.has_product(&sku(21)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_only_backend_lists_what_is_gone_and_deletes_nothing() {
    let w = world().await;
    w.import_all().await;
    let mut config = backend(&w.shop, "2.4.6");
    config.reconcile.delete = false;
    w.node.sync.configure(&config).await.unwrap();
    assert!(w.shop.remove_product(&sku(5)));
    let job = w.ran(reconcile_job("shop", "product", false)).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let result = job.result.clone().unwrap_or_default();
    assert!(
        result.contains("1 no longer there (reported only") && result.contains(&sku(5)),
        "{result}"
    );
    assert!(w.has_product(&sku(5)).await, "kept");
    assert!(w.jobs(DELETE_LOCAL).await.is_empty());
}
