//! Connectors in Python and JavaScript, end to end: the SDKs' and the
//! connectors' own tests (pytest, `node --test`) with the toolchains the
//! build pinned, then shop customers imported by the Rust connector and
//! exported as CRM contacts by the Python connector (componentize-py) and,
//! the same way, by the JavaScript one (componentize-js) — OAuth2 through
//! the host, creates, updates of changed fields only, expired tokens, an
//! existing contact adopted, deletes, rate limits — and the JavaScript
//! mapper unit taking over the Python connector's mapping for the CRM
//! versions it claims.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use junction_demo_crm::{Crm, CrmConfig, Faults, Kind};
use junction_demo_shop::Shop;
use junction_runtime::backend::BackendConfig;
use junction_runtime::node::Node;
use junction_runtime::queue::job::{JobFilter, JobState};
use junction_runtime::storage::{InstalledConnector, RecordWrite, Storage};
use serde_json::{Value, json};

use crate::sync::{assert_units, fresh_node, small};

pub(crate) fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub(crate) fn passes(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_sdk_and_connector_pass_their_pytest_suites() {
    for dir in [
        "guest-sdk/python",
        "connectors/crm-python",
        "connectors/crm-deals-python",
    ] {
        passes(
            Command::new(junction_test_artifacts::PYTHON)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .current_dir(root().join(dir))
                // Keep the sources free of caches the build would see as changes.
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            &format!("pytest in {dir}"),
        );
    }
}

#[test]
fn the_js_sdk_and_connector_pass_their_node_tests() {
    for dir in [
        "guest-sdk/js",
        "connectors/crm-js",
        "connectors/crm-deals-js",
    ] {
        passes(
            Command::new("node")
                .arg("--test")
                .current_dir(root().join(dir)),
            &format!("node --test in {dir}"),
        );
    }
}

/// The JavaScript SDK's TypeScript types come from the WIT with the pinned
/// jco (`npm run types` in `guest-sdk/js`): every interface of the
/// `connector` world, typed.
#[test]
fn typescript_types_are_generated_from_the_wit() {
    let out = tempfile::tempdir().unwrap();
    let jco = Path::new(junction_test_artifacts::NODE_TOOLS)
        .join("node_modules/@bytecodealliance/jco/src/jco.js");
    passes(
        Command::new("node")
            .arg(&jco)
            .arg("guest-types")
            .arg(root().join("wit"))
            .args(["--world-name", "connector", "-o"])
            .arg(out.path()),
        "jco guest-types",
    );
    let interfaces = out.path().join("interfaces");
    for name in [
        "adapter", "mapper", "listener", "describe", "binder", "config", "jobs", "log", "records",
        "state", "types",
    ] {
        let file = interfaces.join(format!("junction-connector-{name}.d.ts"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!(
                "declare module 'junction:connector/{name}@{}'",
                junction_runtime::host::CONTRACT_VERSION
            )),
            "{}",
            file.display()
        );
    }
    let adapter =
        std::fs::read_to_string(interfaces.join("junction-connector-adapter.d.ts")).unwrap();
    assert!(
        adapter.contains("export function search(model: ModelName, filter: Json, cursor: string | undefined, pageSize: number): Page;"),
        "{adapter}"
    );
}

/// The whole CRM connectors, built, with their manifests' names.
const CRM_CONNECTORS: [(&str, &str); 2] = [
    (junction_test_artifacts::CRM_PYTHON, "crm-python"),
    (junction_test_artifacts::CRM_JS, "crm-js"),
];

struct World {
    shop: Shop,
    crm: Crm,
    node: Node,
    storage: Arc<dyn Storage>,
    /// The whole CRM connector (Python or JavaScript).
    connector: InstalledConnector,
    js_mapper: InstalledConnector,
    _dir: tempfile::TempDir,
}

pub(crate) fn crm_backend(crm: &Crm, version: &str) -> BackendConfig {
    serde_json::from_value(json!({
        "name": "crm",
        "kind": "crm",
        "version": version,
        "base_url": crm.base_url(),
        "allow_internal": [crm.addr.to_string()],
        // OAuth2 client credentials: the host adds them to the token
        // request; the connector never sees the secret.
        "auth": {"type": "basic", "username": "junction", "password": "crm-secret"},
    }))
    .unwrap()
}

/// A shop served by the Rust connector and a CRM served by `connector`
/// (one of the whole CRM connectors' components), with the JavaScript
/// mapper unit installed beside it.
async fn world(crm_version: &str, crm: CrmConfig, connector: &str) -> World {
    let (dir, storage, node) = fresh_node().await;
    let shop = super::sync::small_shop().await;
    let crm = Crm::start(crm, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    node.sync
        .install(junction_connectors::MAGENTO)
        .await
        .unwrap();
    let connector = node
        .sync
        .install(&std::fs::read(connector).unwrap())
        .await
        .unwrap();
    let js_mapper = node
        .sync
        .install(&std::fs::read(junction_test_artifacts::CRM_JS_MAPPER).unwrap())
        .await
        .unwrap();
    node.sync
        .configure(&crate::sync::backend(&shop, "2.4.6"))
        .await
        .unwrap();
    node.sync
        .configure(&crm_backend(&crm, crm_version))
        .await
        .unwrap();
    World {
        shop,
        crm,
        node,
        storage,
        connector,
        js_mapper,
        _dir: dir,
    }
}

fn small_crm() -> CrmConfig {
    CrmConfig {
        seed: junction_demo_crm::Seed {
            seed: 3,
            companies: 2,
            contacts: 5,
            deals: 0,
        },
        ..CrmConfig::default()
    }
}

impl World {
    async fn settle(&self) {
        assert!(
            self.node.settle(Duration::from_secs(120)).await.unwrap(),
            "the node did not settle within 120 s: {:?}",
            self.node.outstanding().await
        );
    }

    async fn failed(&self) -> Vec<String> {
        self.storage
            .jobs(&JobFilter {
                state: Some(JobState::Failed),
                limit: 1000,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|j| format!("{} {}: {:?}", j.function, j.args, j.error_message))
            .collect()
    }

    async fn first_failed_log(&self) -> String {
        let Some(job) = self
            .storage
            .jobs(&JobFilter {
                state: Some(JobState::Failed),
                limit: 1,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .pop()
        else {
            return String::new();
        };
        self.storage
            .job_log(job.id)
            .await
            .unwrap()
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn import_customers(&self) {
        self.node
            .queue
            .enqueue_batch(&[crate::sync::batch("customer")])
            .await
            .unwrap();
        self.settle().await;
    }

    /// A batch import of the CRM's contacts, run to its end.
    async fn import_contacts(&self) {
        self.node
            .queue
            .enqueue_batch(&[junction_runtime::sync::batch::batch_job(
                "crm", "customer", false,
            )])
            .await
            .unwrap();
        self.settle().await;
    }

    /// Local customers with their CRM contact (by binding).
    async fn customers_and_contacts(&self) -> Vec<(Value, Option<Value>)> {
        let mut out = Vec::new();
        for id in 1..=small().customers as i64 {
            let b = self
                .storage
                .binding("shop", "customer", &id.to_string())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("shop customer {id} is not bound"));
            let local = self
                .storage
                .record("customer", &b.local_id)
                .await
                .unwrap()
                .unwrap();
            let contact = self
                .storage
                .binding_of_local("crm", "customer", &b.local_id)
                .await
                .unwrap()
                .and_then(|crm| self.crm.object(Kind::Contacts, &crm.external_id));
            out.push((serde_json::from_str(&local.data).unwrap(), contact));
        }
        out
    }

    async fn local_id(&self, shop_customer: i64) -> String {
        self.storage
            .binding("shop", "customer", &shop_customer.to_string())
            .await
            .unwrap()
            .unwrap()
            .local_id
    }

    async fn contact_of(&self, shop_customer: i64) -> Value {
        let local = self.local_id(shop_customer).await;
        let crm_id = self
            .storage
            .binding_of_local("crm", "customer", &local)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("shop customer {shop_customer} has no CRM contact"))
            .external_id;
        self.crm.object(Kind::Contacts, &crm_id).unwrap()
    }

    /// A mapper's refusal reaches the job as the contract's permanent
    /// error with its message (not as a trap), and fails that job alone.
    async fn a_customer_without_email_fails_alone(&self) {
        self.node
            .bus
            .put_record(&RecordWrite {
                model: "customer".into(),
                id: "walk-in".into(),
                data: json!({"first_name": "Walk", "last_name": "In"}).to_string(),
                expected_version: Some(0),
                origin_backend: None,
                bind: None,
                keys: None,
            })
            .await
            .unwrap();
        self.settle().await;
        let failed = self
            .storage
            .jobs(&JobFilter {
                state: Some(JobState::Failed),
                limit: 10,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            failed[0].error_kind.as_deref(),
            Some("permanent"),
            "{failed:?}"
        );
        let message = failed[0].error_message.as_deref().unwrap();
        assert!(
            message.contains("customer walk-in has no email; a contact needs one"),
            "{message}"
        );
        assert_eq!(failed[0].tries, 1, "a permanent error is not retried");
    }

    /// `junction_sandbox_calls_total` of `export` by the `connector`'s component.
    fn calls(&self, connector: &InstalledConnector, export: &str) -> u64 {
        let mut text = String::new();
        junction_runtime::metrics::global().render(&mut text, &|digest| {
            if digest == connector.digest {
                (connector.name.clone(), connector.version.clone())
            } else {
                ("other".into(), "0".into())
            }
        });
        text.lines()
            .filter(|l| {
                l.starts_with("junction_sandbox_calls_total{")
                    && l.contains(&format!("digest=\"{}\"", connector.digest))
                    && l.contains(&format!("export=\"{export}\""))
                    && l.contains("outcome=\"ok\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

fn assert_same_person(local: &Value, contact: &Value) {
    let p = &contact["properties"];
    assert_eq!(p["email"], local["email"], "{contact}");
    assert_eq!(p["firstname"], local["first_name"], "{contact}");
    assert_eq!(p["lastname"], local["last_name"], "{contact}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_customers_become_crm_contacts_through_the_python_connector() {
    customers_sync_both_ways(junction_test_artifacts::CRM_PYTHON, "crm-python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_customers_become_crm_contacts_through_the_js_connector() {
    customers_sync_both_ways(junction_test_artifacts::CRM_JS, "crm-js").await;
}

/// A create the CRM carries out but whose answer is lost (as when the
/// node dies between the backend's commit and the binding): the job's
/// next try repeats it with the key the host stored before the first, the
/// CRM answers the contact it made, and there is one contact, bound. (On
/// CRM 3.1 the JavaScript mapper unit serves customers: it declares no
/// match key, so the retry cannot find the contact by email first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_repeated_with_its_key_and_makes_one_record() {
    let w = world("3.1.0", small_crm(), junction_test_artifacts::CRM_JS).await;
    assert_units(&w.node, "crm", "crm-js", "crm-js-mapper").await;
    let before = w.crm.objects(Kind::Contacts).len();
    w.crm.set_faults(Faults {
        lose_created: 1,
        ..Faults::default()
    });
    w.import_customers().await;
    assert!(
        w.failed().await.is_empty(),
        "{}",
        w.first_failed_log().await
    );
    assert_eq!(
        w.crm.creates_replayed(),
        1,
        "the repeated create carried the first one's Idempotency-Key"
    );
    assert_eq!(
        w.crm.objects(Kind::Contacts).len(),
        before + small().customers,
        "one contact per shop customer, none twice"
    );
    for (local, contact) in w.customers_and_contacts().await {
        let contact = contact.unwrap_or_else(|| panic!("no CRM contact for {local}"));
        assert_same_person(&local, &contact);
    }
    // Once bound, a record's create key is forgotten.
    let keys = w.storage.state_list("crm", "export:create:").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// The same lost answer where the connector declares a match key and can
/// find by it: the retry finds the contact the first try made by its email
/// and adopts it, so the create is not even repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_found_by_email_on_retry_and_adopted() {
    let w = world("3.0.0", small_crm(), junction_test_artifacts::CRM_JS).await;
    let before = w.crm.objects(Kind::Contacts).len();
    w.crm.set_faults(Faults {
        lose_created: 1,
        ..Faults::default()
    });
    w.import_customers().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert_eq!(w.crm.creates_replayed(), 0, "found, not created again");
    assert_eq!(
        w.crm.objects(Kind::Contacts).len(),
        before + small().customers,
        "one contact per shop customer, none twice"
    );
    let adopted = w
        .storage
        .jobs(&JobFilter {
            function: Some(junction_runtime::sync::EXPORT_RECORD.into()),
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|j| {
            j.result
                .as_deref()
                .is_some_and(|r| r.starts_with("adopted customer"))
        })
        .count();
    assert_eq!(adopted, 1, "the one lost create was adopted on retry");
}

/// The whole flow through the CRM connector built at `path`, whose
/// manifest is called `name`.
async fn customers_sync_both_ways(path: &str, name: &str) {
    let w = world("3.0.0", small_crm(), path).await;
    assert_eq!(w.connector.name, name);
    assert_units(&w.node, "crm", name, name).await;

    // One shop customer is in the CRM already, under another contact:
    // the connector adopts that contact instead of failing on the
    // duplicate email.
    let first = w.shop.customer(1).unwrap();
    let existing = w.crm.objects(Kind::Contacts)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        w.crm
            .edit(Kind::Contacts, &existing, json!({"email": first["email"]}))
    );

    w.import_customers().await;
    assert!(
        w.failed().await.is_empty(),
        "{}",
        w.first_failed_log().await
    );
    let pairs = w.customers_and_contacts().await;
    for (local, contact) in &pairs {
        let contact = contact
            .as_ref()
            .unwrap_or_else(|| panic!("no CRM contact for {local}"));
        assert_same_person(local, contact);
        assert_eq!(contact["properties"]["lifecyclestage"], "customer");
    }
    assert_eq!(w.contact_of(1).await["id"], existing.as_str());
    assert_eq!(
        w.crm.objects(Kind::Contacts).len(),
        5 + small().customers - 1,
        "one contact per shop customer, the existing one reused"
    );
    // Calls share the token kept in the backend's state: only jobs that
    // started together before the first one stored it asked for their own.
    let issued = w.crm.tokens_issued();
    assert!(
        (1..=crate::sync::node_config("x").concurrency as u64).contains(&issued),
        "{issued} tokens for {} exports",
        small().customers
    );

    // A local change goes out as that field alone, with a renewed token
    // once the CRM has expired the old one.
    w.crm.expire_tokens();
    let before = w.contact_of(2).await;
    let local = w.local_id(2).await;
    w.crm.edit(
        Kind::Contacts,
        before["id"].as_str().unwrap(),
        json!({"phone": "+1 555 0100"}),
    );
    w.node
        .bus
        .edit_record("customer", &local, |d| d["first_name"] = json!("Renamed"))
        .await
        .unwrap()
        .unwrap();
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let after = w.contact_of(2).await;
    assert_eq!(after["properties"]["firstname"], "Renamed");
    assert_eq!(
        after["properties"]["phone"], "+1 555 0100",
        "untouched fields stay"
    );
    assert_eq!(
        w.crm.tokens_issued(),
        issued + 1,
        "one new token after expiry"
    );

    // A deleted local customer is deleted in the CRM.
    let gone = after["id"].as_str().unwrap().to_string();
    w.node
        .bus
        .delete_record("customer", &local, None)
        .await
        .unwrap();
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert!(w.crm.object(Kind::Contacts, &gone).is_none());
    assert!(w.calls(&w.connector, "adapter.create") >= small().customers as u64 - 1);
    w.a_customer_without_email_fails_alone().await;
    drop(w.shop);
}

/// `check` works through each connector's HTTP client, and a CRM the
/// operator did not allow is a config error that names the host and the
/// operator's fix (`allow_internal`, the CRM being on loopback) — the
/// host's denial reaches the connector as such, not as a network failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_connectors_check_the_crm_and_report_a_denied_host() {
    for (path, name) in CRM_CONNECTORS {
        let w = world("3.0.0", small_crm(), path).await;
        let (line, adapter) = w.node.sync.check_backend("crm").await.unwrap();
        assert!(adapter.starts_with(&format!("{name} ")), "{adapter}");
        assert_eq!(
            line,
            format!("connected to the CRM at {}: 5 contacts", w.crm.base_url()),
            "{name}"
        );

        let mut denied = crm_backend(&w.crm, "3.0.0");
        denied.allow_internal.clear();
        w.node.sync.configure(&denied).await.unwrap();
        let err = w
            .node
            .sync
            .check_backend("crm")
            .await
            .unwrap_err()
            .to_string();
        // The CRM is on loopback: the fix is the backend's allow_internal,
        // and the connector's error says so.
        assert!(
            err.contains(&format!("request to {} denied by the host", w.crm.addr))
                && err.contains("internal address")
                && err.contains(&format!(
                    "list {} in the backend's allow_internal",
                    w.crm.addr
                )),
            "{name}: {err}"
        );
        drop(w.shop);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_mapper_takes_over_for_the_crm_versions_it_claims() {
    let w = world("3.1.0", small_crm(), junction_test_artifacts::CRM_PYTHON).await;
    assert_units(&w.node, "crm", "crm-python", "crm-js-mapper").await;
    w.import_customers().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    for (local, contact) in w.customers_and_contacts().await {
        assert_same_person(&local, &contact.expect("every customer has a contact"));
    }
    assert!(w.calls(&w.js_mapper, "mapper.map-export") >= small().customers as u64);

    w.a_customer_without_email_fails_alone().await;
    drop(w.shop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_crm_converges_with_no_failed_jobs() {
    for (connector, _) in CRM_CONNECTORS {
        let w = world(
            "3.0.0",
            CrmConfig {
                // Under the pace of the exports (each event now goes
                // through its listener's delivery job first, and the crm
                // backend gets its fair share of the workers), so that
                // 429s come for sure.
                rate_limit: Some(2),
                ..small_crm()
            },
            connector,
        )
        .await;
        w.import_customers().await;
        assert!(
            w.failed().await.is_empty(),
            "{connector}: {:?}",
            w.failed().await
        );
        for (local, contact) in w.customers_and_contacts().await {
            assert_same_person(&local, &contact.expect("every customer has a contact"));
        }
        assert!(
            w.crm.rate_limited() > 0,
            "{connector}: the CRM never said 429"
        );
        drop(w.shop);
    }
}

/// The Rust, Python and JavaScript mappers give the same answers: the
/// same contact for a new customer, the same changed fields for an
/// update, the same customer for a contact, the same refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_python_and_js_mappers_map_alike() {
    use junction_runtime::model::{LocalRecord, RemoteRecord};
    let host = crate::support::host();
    let mut units = Vec::new();
    for path in [
        junction_test_artifacts::CRM_MAPPER,
        junction_test_artifacts::CRM_PYTHON,
        junction_test_artifacts::CRM_JS_MAPPER,
        junction_test_artifacts::CRM_JS,
    ] {
        units.push((path, host.load_file(path.as_ref()).await.unwrap()));
    }
    let ctx = crate::support::Ctx::default().build();
    let local = |id: &str, data: Value| LocalRecord {
        model: "customer".into(),
        id: id.into(),
        data: data.to_string(),
        version: 1,
        updated_at: "2026-01-02T03:04:05Z".into(),
    };
    let full = json!({"email": " Ana.Silva@Example.com", "first_name": "Ana", "last_name": "Silva", "phone": "+351 21 000 0000", "loyalty": 7});
    let exports = [
        (local("c1", full.clone()), None),
        (
            local("c1", full.clone()),
            Some(vec!["first_name".to_string(), "loyalty".to_string()]),
        ),
        (
            local("c2", json!({"first_name": "No", "last_name": "Mail"})),
            None,
        ),
        (local("c3", json!({"email": "not-an-email"})), None),
    ];
    let contact = RemoteRecord {
        external_id: "1001".into(),
        data: json!({"id": "1001", "properties": {"email": "Bo@Example.com", "firstname": "Bo", "lastname": "Lee", "city": "Porto", "hs_object_id": "1001"}}).to_string(),
        updated_at: Some("2026-01-02T03:04:05.000Z".into()),
    };
    let mut answers: Vec<(String, Vec<String>)> = Vec::new();
    for (path, unit) in &units {
        let mut mine = Vec::new();
        for (record, changed) in &exports {
            let r = unit
                .map_export(&ctx, "customer", record.clone(), changed.clone())
                .await
                .into_result();
            mine.push(match r {
                Ok(text) => serde_json::from_str::<Value>(&text).unwrap().to_string(),
                Err(e) => format!("{:?}", e.guest().expect("a guest error, not a trap")),
            });
        }
        let imported = unit
            .map_import(&ctx, "customer", &contact)
            .await
            .into_result()
            .unwrap();
        mine.push(
            serde_json::from_str::<Value>(&imported)
                .unwrap()
                .to_string(),
        );
        answers.push((path.to_string(), mine));
    }
    assert_eq!(
        answers[0].1[0],
        json!({"properties": {"email": "ana.silva@example.com", "firstname": "Ana", "lastname": "Silva", "phone": "+351 21 000 0000", "lifecyclestage": "customer"}}).to_string()
    );
    assert!(
        answers[0].1[2].contains("customer c2 has no email"),
        "{:?}",
        answers[0]
    );
    for other in &answers[1..] {
        assert_eq!(
            other.1, answers[0].1,
            "{} and {} disagree",
            other.0, answers[0].0
        );
    }
}

/// Two vendors' connectors on one CRM backend: the contacts connector and
/// a companies-and-deals connector (Python, under 120 lines) that claims
/// only its two models. Each model goes to the unit that claims it; both
/// sync, deals linked to their companies through the binder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_companies_and_deals_connector_syncs_beside_the_contacts_connector() {
    let source = [
        "connectors/crm-deals-python/app.py",
        "connectors/crm-deals-python/junction_crm_deals/__init__.py",
    ];
    let lines: usize = source
        .iter()
        .map(|p| {
            std::fs::read_to_string(root().join(p))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(lines <= 120, "the connector is {lines} lines");
    let crm = CrmConfig {
        seed: junction_demo_crm::Seed {
            seed: 5,
            companies: 3,
            contacts: 4,
            deals: 6,
        },
        ..CrmConfig::default()
    };
    let w = world("3.0.0", crm, junction_test_artifacts::CRM_PYTHON).await;
    // Joining the backend grants the new vendor its models there: the
    // operator approves that, as for any version that requests more.
    let bytes = std::fs::read(junction_test_artifacts::CRM_DEALS_PYTHON).unwrap();
    let err = w.node.sync.install(&bytes).await.unwrap_err().to_string();
    assert!(
        err.contains("crm-deals-python") && err.contains("company") && err.contains("deal"),
        "{err}"
    );
    let deals = w.node.sync.install_as(&bytes, true, true).await.unwrap();
    assert_eq!(deals.name, "crm-deals-python");
    assert!(deals.active);
    let units = w.node.sync.backend("crm").await.unwrap();
    for (model, connector) in [
        ("customer", "crm-python"),
        ("company", "crm-deals-python"),
        ("deal", "crm-deals-python"),
    ] {
        let route = units.route(model).unwrap();
        assert!(
            route.adapter_label.starts_with(&format!("{connector} ")),
            "{model}: {}",
            route.adapter_label
        );
        assert!(
            route.mapper_label.starts_with(&format!("{connector} ")),
            "{model}: {}",
            route.mapper_label
        );
    }
    // Two connectors share the backend: a model neither claims has no unit.
    let unclaimed = units.route("ticket").err().unwrap().to_string();
    assert!(unclaimed.contains("claims model \"ticket\""), "{unclaimed}");
    // Each connector's models in its manifest's order (a deal's company
    // first); connectors by name.
    assert_eq!(units.importable, ["company", "deal", "customer"]);
    let (line, adapters) = w.node.sync.check_backend("crm").await.unwrap();
    assert!(
        line.contains("contacts") && line.contains("3 companies"),
        "{line}"
    );
    assert!(
        adapters.contains("crm-python") && adapters.contains("crm-deals-python"),
        "{adapters}"
    );

    w.node
        .queue
        .enqueue_batch(&junction_runtime::sync::batch::batch_jobs(
            "crm",
            &["customer", "company", "deal"],
            true,
        ))
        .await
        .unwrap();
    w.settle().await;
    assert!(
        w.failed().await.is_empty(),
        "{}",
        w.first_failed_log().await
    );
    let bound = |model: &'static str| {
        let storage = w.storage.clone();
        async move {
            storage
                .binding_counts("crm")
                .await
                .unwrap()
                .into_iter()
                .find(|(m, _)| m == model)
                .map_or(0, |(_, n)| n)
        }
    };
    assert_eq!(bound("customer").await, 4);
    assert_eq!(bound("company").await, 3);
    assert_eq!(bound("deal").await, 6);
    for deal in w.crm.objects(Kind::Deals) {
        let id = deal["id"].as_str().unwrap();
        let local = w
            .storage
            .binding("crm", "deal", id)
            .await
            .unwrap()
            .unwrap()
            .local_id;
        let record: Value = serde_json::from_str(
            &w.storage
                .record("deal", &local)
                .await
                .unwrap()
                .unwrap()
                .data,
        )
        .unwrap();
        assert_eq!(record["name"], deal["properties"]["dealname"]);
        let company = deal["properties"]["associatedcompanyid"].as_str().unwrap();
        let company_local = w
            .storage
            .binding("crm", "company", company)
            .await
            .unwrap()
            .unwrap()
            .local_id;
        assert_eq!(record["company"], company_local.as_str(), "deal {id}");
    }
    // Each job recorded the component that served its model.
    let jobs = w
        .storage
        .jobs(&JobFilter {
            function: Some(junction_runtime::sync::IMPORT_BATCH.into()),
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    for j in jobs {
        let model = serde_json::from_str::<Value>(&j.args).unwrap()["model"].clone();
        let want = if model == "customer" {
            &w.connector.digest
        } else {
            &deals.digest
        };
        assert_eq!(j.connector_digest.as_ref(), Some(want), "{model}");
    }
}

/// A CRM that hands out tokens and answers every other request with JSON
/// `null`: the companies-and-deals connector's `check` then calls `.get`
/// on `None` — a bug of the connector's, an `AttributeError`.
async fn null_crm() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, and a body as long as its content-length.
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = if String::from_utf8_lossy(&request).contains("/oauth/") {
                    r#"{"access_token":"t","expires_in":3600}"#
                } else {
                    "null"
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_exception_at_install_shows_the_guests_own_exception() {
    let w = world("3.0.0", small_crm(), junction_test_artifacts::CRM_PYTHON).await;
    let addr = null_crm().await;
    let mut broken: BackendConfig = serde_json::from_value(json!({
        "name": "broken-crm",
        "kind": "crm",
        "version": "3.0.0",
        "base_url": format!("http://{addr}"),
        "allow_internal": [addr.to_string()],
        "auth": {"type": "basic", "username": "junction", "password": "crm-secret"},
    }))
    .unwrap();
    w.node.sync.configure(&broken).await.unwrap();
    let bytes = std::fs::read(junction_test_artifacts::CRM_DEALS_PYTHON).unwrap();
    let err = w
        .node
        .sync
        .install_as(&bytes, true, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken-crm")
            && err.contains(
                "the guest raised AttributeError: 'NoneType' object has no attribute 'get'"
            )
            && err.contains("in check)"),
        "{err}"
    );
    // Not the interpreter's own panic, which says nothing of the mistake.
    assert!(!err.contains("panicked at"), "{err}");
    // Fixed configuration, same component: it installs.
    broken.base_url = w.crm.base_url();
    broken.allow_internal = vec![w.crm.addr.to_string()];
    w.node.sync.configure(&broken).await.unwrap();
    w.node.sync.install_as(&bytes, true, true).await.unwrap();
}

/// `junction-componentize` for Python (the SDK's documented build
/// command): a unit built for a world that cannot carry it is refused
/// before componentize-py runs, naming the fix; a good one is built and
/// checked with `junction connector inspect`.
#[test]
fn junction_componentize_checks_the_unit_and_the_component_it_builds() {
    let out = tempfile::tempdir().unwrap();
    let build = |world: &str, wasm: &Path| {
        Command::new(junction_test_artifacts::PYTHON)
            .args([
                "-m",
                "junction_guest.build",
                "app",
                "-p",
                ".",
                "--world",
                world,
                "-o",
            ])
            .arg(wasm)
            .current_dir(root().join("connectors/crm-deals-python"))
            .env("PYTHONPATH", root().join("guest-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("JUNCTION", env!("CARGO_BIN_EXE_junction"))
            .output()
            .unwrap()
    };
    // An adapter built for the world without outgoing HTTP: install would
    // refuse it; the command says so first, and writes nothing.
    let wrong = out.path().join("wrong.wasm");
    let refused = build("connector", &wrong);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("does not import wasi:http/outgoing-handler")
            && said.contains("build for connector-http or adapter-unit-http"),
        "{said}"
    );
    assert!(!wrong.exists());
    let mapper_only = build("mapper-unit", &wrong);
    let said = String::from_utf8_lossy(&mapper_only.stderr);
    assert!(
        !mapper_only.status.success()
            && said.contains(
                "passes adapter= to export(), but world mapper-unit does not export adapter"
            ),
        "{said}"
    );
    // The documented world: built, then inspected as the host will.
    let good = out.path().join("deals.wasm");
    let built = build("connector-http", &good);
    let said = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(
        said.contains("built ") && said.contains("crm-deals-python") && said.contains("company"),
        "{said}"
    );
}

/// The companies-and-deals connector in Python, JavaScript and Rust (the
/// imports benchmark's three) imports the same CRM into the same local
/// records, each deal linked to its company's local record.
#[tokio::test(flavor = "multi_thread")]
async fn companies_and_deals_import_alike_in_python_js_and_rust() {
    let crm = Crm::start(
        CrmConfig {
            seed: junction_demo_crm::Seed {
                seed: 21,
                companies: 4,
                contacts: 6,
                deals: 9,
            },
            ..CrmConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut seen: Vec<(&str, Vec<(String, Value)>)> = Vec::new();
    for (label, component) in [
        ("python", junction_test_artifacts::CRM_DEALS_PYTHON),
        ("js", junction_test_artifacts::CRM_DEALS_JS),
        ("rust", junction_test_artifacts::CRM_DEALS_RUST),
    ] {
        let (_dir, storage, node) = fresh_node().await;
        node.sync
            .install(&std::fs::read(component).unwrap())
            .await
            .unwrap();
        node.sync
            .configure(&crm_backend(&crm, "3.0.0"))
            .await
            .unwrap();
        let batches = junction_runtime::sync::batch::batch_jobs("crm", &["company", "deal"], true);
        run_clean(&node, &*storage, &batches, label).await;
        // Local ids differ between nodes: compare by external id, with each
        // deal's company given as its company's external id.
        let companies = binding_map(&*storage, "company").await;
        let deals = binding_map(&*storage, "deal").await;
        assert_eq!(companies.len(), 4, "{label}");
        assert_eq!(deals.len(), 9, "{label}");
        let mut out = Vec::new();
        for (external_id, local_id) in &deals {
            let record = storage.record("deal", local_id).await.unwrap().unwrap();
            let mut data: Value = serde_json::from_str(&record.data).unwrap();
            let company_local = data["company"].as_str().unwrap().to_string();
            let company = companies
                .iter()
                .find(|(_, l)| **l == company_local)
                .map(|(e, _)| e.clone())
                .unwrap_or_else(|| panic!("{label}: deal {external_id}'s company {company_local} is no imported company"));
            let want = crm.object(Kind::Deals, external_id).unwrap();
            assert_eq!(
                want["properties"]["associatedcompanyid"].as_str(),
                Some(company.as_str()),
                "{label}: deal {external_id}"
            );
            data["company"] = json!(company);
            // JavaScript writes 6042 where Python writes 6042.0: the same
            // number in JSON.
            if let Some(n) = data["amount"].as_f64() {
                data["amount"] = json!(n);
            }
            out.push((external_id.clone(), data));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        seen.push((label, out));
        node.stop(Duration::from_secs(5)).await.unwrap();
    }
    for (label, deals) in &seen[1..] {
        assert_eq!(deals, &seen[0].1, "{label} imported deals unlike python");
    }
}

/// Enqueue `specs` and wait until the node is idle, with no job failed.
pub(crate) async fn run_clean(
    node: &Node,
    storage: &dyn Storage,
    specs: &[junction_runtime::queue::JobSpec],
    what: &str,
) {
    node.queue.enqueue_batch(specs).await.unwrap();
    assert!(
        node.settle(Duration::from_secs(120)).await.unwrap(),
        "{what}: the node did not settle"
    );
    let failed = storage
        .jobs(&JobFilter {
            state: Some(JobState::Failed),
            limit: 5,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "{what}: failed jobs: {failed:?}");
}

/// External id → local id of a model's bindings on backend `crm`.
async fn binding_map(
    storage: &dyn Storage,
    model: &str,
) -> std::collections::HashMap<String, String> {
    storage
        .bindings_page("crm", model, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.external_id, b.local_id))
        .collect()
}

/// The CRM connectors' match key (`customer.email`), in Python and in
/// JavaScript: a contact the CRM already holds and a shop customer with
/// the same email become one local record, whichever is imported first,
/// and the shop's other customers are exported as new contacts, none
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_customer_and_a_crm_contact_with_one_email_become_one_local_record() {
    for (connector, _) in CRM_CONNECTORS {
        one_person_in_shop_and_crm_is_one_record(connector).await;
    }
}

async fn one_person_in_shop_and_crm_is_one_record(connector: &str) {
    let w = world("3.0.0", small_crm(), connector).await;
    let email = w.shop.customer(1).unwrap()["email"]
        .as_str()
        .unwrap()
        .to_string();
    // Entered in the CRM by hand before any sync.
    let contact = w
        .crm
        .add(Kind::Contacts, json!({"email": email, "firstname": "Ada"}))
        .unwrap();
    w.import_contacts().await;
    let from_crm = w
        .storage
        .binding_to_local("crm", "customer", &contact)
        .await
        .unwrap()
        .expect("the contact was imported");
    w.import_customers().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert_eq!(w.local_id(1).await, from_crm, "one local record, adopted");
    let with_email = w
        .crm
        .objects(Kind::Contacts)
        .into_iter()
        .filter(|c| c["properties"]["email"] == email.as_str())
        .count();
    assert_eq!(with_email, 1, "no second contact for the same person");
    // Every shop customer has its contact, each its own.
    let mut contacts: Vec<String> = Vec::new();
    for id in 1..=small().customers as i64 {
        contacts.push(w.contact_of(id).await["id"].as_str().unwrap().to_string());
    }
    contacts.sort();
    contacts.dedup();
    assert_eq!(contacts.len(), small().customers);
}

/// demo-crm's signed webhooks (HubSpot-shaped change lists) reach the
/// `contacts` webhook of the CRM connectors, in Python and JavaScript: a
/// contact changed in the CRM is imported without a schedule, and one
/// deleted there is deleted locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_changed_or_deleted_in_the_crm_arrives_through_its_webhook() {
    for (connector, _) in CRM_CONNECTORS {
        crm_changes_arrive_by_webhook(connector).await;
    }
}

async fn crm_changes_arrive_by_webhook(connector: &str) {
    use junction_runtime::api::hooks::WebhookSettings;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let w = world(
        "3.0.0",
        CrmConfig {
            webhook: Some(junction_demo_shop::WebhookTarget {
                url: format!("http://{addr}/hooks/crm/contacts"),
                secret: "crm-hook".into(),
            }),
            ..small_crm()
        },
        connector,
    )
    .await;
    let mut config = crm_backend(&w.crm, "3.0.0");
    config.webhooks = Some(junction_runtime::backend::BackendWebhooks {
        secret: junction_runtime::capabilities::egress::Secret::new("crm-hook"),
    });
    w.node.sync.configure(&config).await.unwrap();
    let state = junction_runtime::api::ApiState::new(&w.node, "token", None);
    state.set_webhooks(WebhookSettings {
        enabled: true,
        ..WebhookSettings::default()
    });
    tokio::spawn(axum::serve(listener, junction_runtime::api::app(state)).into_future());
    w.import_contacts().await;
    let contact = w.crm.objects(Kind::Contacts)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let local = w
        .storage
        .binding_to_local("crm", "customer", &contact)
        .await
        .unwrap()
        .unwrap();
    assert!(
        w.crm
            .edit(Kind::Contacts, &contact, json!({"firstname": "Renamed"}))
    );
    let mut arrived = false;
    for _ in 0..500 {
        if first_name(&w.storage, &local).await == Some(json!("Renamed")) {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(arrived, "webhooks sent: {:?}", w.crm.webhooks_sent());
    assert!(w.crm.remove(Kind::Contacts, &contact));
    for _ in 0..500 {
        if first_name(&w.storage, &local).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        first_name(&w.storage, &local).await,
        None,
        "deleted locally"
    );
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
}

/// A local customer's `first_name`, or `None` when the record is gone.
async fn first_name(storage: &Arc<dyn Storage>, local: &str) -> Option<Value> {
    storage
        .record("customer", local)
        .await
        .unwrap()
        .map(|r| serde_json::from_str::<Value>(&r.data).unwrap()["first_name"].clone())
}
