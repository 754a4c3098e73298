//! A real Tryton 8.2 server per test: the template database the artifacts
//! build made (party, product, stock and sale activated, a REST key for
//! admin) copied into a folder of the test's own and served by `trytond`
//! on a free loopback port, killed when the test drops it. The first step
//! of the Tryton connector's end-to-end tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use junction_test_artifacts::{TRYTON_DATABASE, TRYTON_KEY, TRYTON_PYTHON, TRYTON_TEMPLATE};

pub(crate) struct Tryton {
    pub(crate) addr: std::net::SocketAddr,
    /// `X-Tryton-Context`: base64url of `{"company": ID}`. Prices and
    /// sales are per company, and REST calls run with no company unless
    /// they name one.
    pub(crate) context: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Tryton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tryton {
    /// A fresh copy of the template, served; ready when its REST API
    /// answers.
    pub(crate) async fn start() -> Tryton {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("{TRYTON_DATABASE}.sqlite");
        let template = std::path::Path::new(TRYTON_TEMPLATE);
        std::fs::copy(template.join(&db), dir.path().join(&db)).unwrap();
        let context = std::fs::read_to_string(template.join("context")).unwrap();
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let config = dir.path().join("trytond.conf");
        std::fs::write(
            &config,
            format!(
                "[database]\nuri = sqlite://\npath = {}\n[web]\nlisten = {addr}\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("trytond.log")).unwrap();
        let trytond = std::path::Path::new(TRYTON_PYTHON).with_file_name("trytond");
        let child = Command::new(trytond)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("trytond from the Tryton virtualenv did not start");
        let t = Tryton {
            addr,
            context: context.trim().to_string(),
            child,
            dir,
        };
        let started = Instant::now();
        loop {
            if let Some((200, _)) = t.try_rest("GET", "party.party?s=1", None).await {
                return t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "trytond did not answer on {addr} within 60 s: {}",
                std::fs::read_to_string(t.dir.path().join("trytond.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Tryton connector installed on `w`'s node, serving this server
    /// as backend `erp` (its company from the template).
    pub(crate) async fn serve_as_erp(&self, w: &crate::sync::World) {
        w.node
            .sync
            .install(&std::fs::read(junction_test_artifacts::TRYTON_CONNECTOR).unwrap())
            .await
            .unwrap();
        let company: Value = serde_json::from_str(
            &std::fs::read_to_string(std::path::Path::new(TRYTON_TEMPLATE).join("company.json"))
                .unwrap(),
        )
        .unwrap();
        let config = serde_json::from_value(json!({
            "name": "erp",
            "kind": "tryton",
            "version": "8.2.1",
            "base_url": self.base_url(),
            "allow_internal": [self.addr.to_string()],
            "auth": {"type": "bearer", "token": TRYTON_KEY},
            "settings": {"company": company["company"]},
        }))
        .unwrap();
        w.node.sync.configure(&config).await.unwrap();
    }

    /// `http://127.0.0.1:PORT/<database>`, the base of its REST API.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/{TRYTON_DATABASE}", self.addr)
    }

    /// `METHOD /<database>/rest/model/<path>` with the admin's key; the
    /// status and the JSON answer (`null` when there is none).
    pub(crate) async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_rest(method, path, body)
            .await
            .unwrap_or_else(|| panic!("trytond on {} dropped the connection", self.addr))
    }

    async fn try_rest(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        exchange(
            self.addr,
            method,
            &format!("/{TRYTON_DATABASE}/rest/model/{path}"),
            &[
                ("Authorization", format!("bearer {TRYTON_KEY}")),
                ("X-Tryton-Context", self.context.clone()),
            ],
            body,
        )
        .await
    }
}

/// One HTTP/1.1 exchange on a fresh connection; `None` when it failed.
async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: tryton\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(rest).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_tryton_starts_from_the_pinned_lock_and_serves_its_rest_api() {
    let t = Tryton::start().await;
    let (status, created) = t
        .rest("POST", "party.party", Some(json!({"name": "Ada Lovelace"})))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, read) = t
        .rest("GET", &format!("party.party/{id}?f=name&f=code"), None)
        .await;
    assert_eq!(
        (status, &read["name"]),
        (200, &json!("Ada Lovelace")),
        "{read}"
    );
    // A product with its price: decimals travel as {"__class__": "Decimal"},
    // the SKU is the variant's code, the price its template's (company-
    // dependent: the call names the company in X-Tryton-Context).
    let price = json!({"__class__": "Decimal", "decimal": "12.50"});
    let (status, template) = t
        .rest(
            "POST",
            "product.template",
            Some(
                json!({"name": "Ember Mug", "default_uom": 1, "list_price": price,
                        "products": [["create", [{"suffix_code": "DS-00001"}]]]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{template}");
    let (status, products) = t
        .rest(
            "GET",
            "product.product?f=code&f=template.list_price&f=write_date",
            None,
        )
        .await;
    assert_eq!(status, 200, "{products}");
    assert_eq!(products[0]["code"], "DS-00001");
    assert_eq!(products[0]["template"]["list_price"], price);
    assert_eq!(products[0]["write_date"]["__class__"], "datetime");
    // The key is what lets a client in: none, and Tryton refuses.
    let (status, _) = exchange(
        t.addr,
        "GET",
        &format!("/{TRYTON_DATABASE}/rest/model/party.party"),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert!(t.base_url().ends_with(TRYTON_DATABASE));
}

/// The Tryton connector against the real server: parties with an email
/// become local customers (the company's own party, without one, is
/// declined), and a party with the email of a shop customer imported
/// before is adopted into that customer's local record, not duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_parties_become_customers_and_one_with_a_shop_customers_email_is_adopted() {
    let w = crate::sync::world().await;
    w.run(vec![crate::sync::batch("customer")]).await;
    let shop_email = w.shop.customer(1).unwrap()["email"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Tryton::start().await;
    for (name, email) in [
        ("Grace Hopper", "grace@example.com"),
        ("Ada Shopper", shop_email.as_str()),
    ] {
        let (status, v) = t
            .rest(
                "POST",
                "party.party",
                Some(json!({"name": name,
                            "contact_mechanisms": [["create", [{"type": "email", "value": email}]]]})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    t.serve_as_erp(&w).await;
    let customers_before = w
        .storage
        .records("customer", None, 1000)
        .await
        .unwrap()
        .len();
    w.run(vec![junction_runtime::sync::batch::batch_job(
        "erp", "customer", false,
    )])
    .await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let customers = w.storage.records("customer", None, 1000).await.unwrap();
    assert_eq!(
        customers.len(),
        customers_before + 1,
        "Grace is new; Ada is the shop's customer"
    );
    let shop_local = w
        .storage
        .binding_to_local("shop", "customer", "1")
        .await
        .unwrap()
        .unwrap();
    let erp_bound = w.storage.binding_counts("erp").await.unwrap();
    assert_eq!(
        erp_bound,
        vec![("customer".to_string(), 2)],
        "two customers; the company declined"
    );
    let grace = customers
        .iter()
        .find(|r| r.data.contains("grace@example.com"))
        .expect("Grace imported");
    let grace: Value = serde_json::from_str(&grace.data).unwrap();
    assert_eq!(
        (grace["first_name"].as_str(), grace["last_name"].as_str()),
        (Some("Grace"), Some("Hopper"))
    );
    // Ada's party is bound to the shop customer's local record.
    let mut adopted = false;
    for id in 1..=10 {
        if w.storage
            .binding_to_local("erp", "customer", &id.to_string())
            .await
            .unwrap()
            .as_deref()
            == Some(shop_local.as_str())
        {
            adopted = true;
        }
    }
    assert!(
        adopted,
        "the party with the shop customer's email was adopted"
    );
}

/// Tryton's product variants become local products by their code: one
/// with a shop product's SKU is adopted into that product's local record
/// (its Tryton price and name win, as synced last) and its price goes on
/// to the shop; a new one is created; the price travels as Tryton's
/// Decimal and arrives as a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_products_are_adopted_by_sku_and_their_decimal_prices_arrive_as_numbers() {
    let w = crate::sync::world().await;
    w.run(vec![crate::sync::batch("product")]).await;
    let t = Tryton::start().await;
    for (name, code, price) in [
        ("Ember Mug (ERP)", crate::sync::sku(1), "19.90"),
        ("Tea Towel", "ERP-7".to_string(), "4.00"),
    ] {
        let (status, v) = t
            .rest(
                "POST",
                "product.template",
                Some(json!({"name": name, "default_uom": 1,
                            "list_price": {"__class__": "Decimal", "decimal": price},
                            "products": [["create", [{"suffix_code": code}]]]})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    t.serve_as_erp(&w).await;
    let before = w
        .storage
        .records("product", None, 10_000)
        .await
        .unwrap()
        .len();
    w.run(vec![junction_runtime::sync::batch::batch_job(
        "erp", "product", false,
    )])
    .await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert_eq!(
        w.storage
            .records("product", None, 10_000)
            .await
            .unwrap()
            .len(),
        before + 1,
        "the tea towel is new; the mug is the shop's"
    );
    let mug = w.local("product", &crate::sync::sku(1)).await;
    assert_eq!(
        (mug["name"].as_str(), mug["price"].as_f64()),
        (Some("Ember Mug (ERP)"), Some(19.9))
    );
    assert_eq!(
        w.storage.binding_counts("erp").await.unwrap(),
        vec![("product".to_string(), 2)]
    );
    // Local records are the hub: the ERP's price reached the shop through
    // the Magento connector's listener, the two connectors never talking.
    assert_eq!(
        w.shop.product(&crate::sync::sku(1)).unwrap()["price"],
        json!(19.9)
    );
}
