//! The Tryton connector end to end against a real Tryton 8.2: per test,
//! a `junction_tryton::Server` (the template the artifacts build installed,
//! copied into the test's own folder and served by `trytond` on a free
//! loopback port, killed when the test drops it) as backend `erp` beside
//! the reference shop.

use serde_json::{Value, json};

use junction_connector_tryton::values::base64url;
use junction_test_artifacts::TRYTON_DIR;
use junction_tryton::{DATABASE, Server};

pub(crate) struct Tryton {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Tryton {
    /// A fresh copy of the template, served; ready when its REST API
    /// answers.
    pub(crate) async fn start() -> Tryton {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let server = tokio::task::spawn_blocking(move || {
            let install = junction_tryton::install(std::path::Path::new(TRYTON_DIR))?;
            Server::start(&install, &path)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("starting Tryton: {e}"));
        Tryton { server, _dir: dir }
    }

    /// The Tryton connector installed on `w`'s node, serving this server
    /// as backend `erp` (its company from the template).
    pub(crate) async fn serve_as_erp(&self, w: &crate::sync::World) {
        w.node
            .sync
            .install(junction_connectors::TRYTON)
            .await
            .unwrap();
        let config = serde_json::from_value(json!({
            "name": "erp",
            "kind": "tryton",
            "version": "8.2.1",
            "base_url": self.server.base_url(),
            "allow_internal": [self.server.addr.to_string()],
            "auth": {"type": "bearer", "token": junction_tryton::KEY},
            "settings": {"company": self.server.company},
        }))
        .unwrap();
        w.node.sync.configure(&config).await.unwrap();
    }

    /// `METHOD /<database>/rest/model/<path>` with the admin's key; the
    /// status and the JSON answer (`null` when there is none).
    pub(crate) async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        tokio::task::block_in_place(|| self.server.rest(method, path, body.as_ref()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Records of `model` in `domain` with `fields`, by id.
    pub(crate) async fn search(&self, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
        let mut path = format!(
            "{model}?d={}&o={}",
            base64url(domain.to_string().as_bytes()),
            base64url(json!([["id", "ASC"]]).to_string().as_bytes())
        );
        for f in fields {
            path.push_str("&f=");
            path.push_str(f);
        }
        let (status, found) = self.rest("GET", &path, None).await;
        assert_eq!(status, 200, "searching {model}: {found}");
        found.as_array().cloned().unwrap_or_default()
    }
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
    let (status, _) = tokio::task::block_in_place(|| {
        t.server.exchange(
            "GET",
            &format!("/{DATABASE}/rest/model/party.party"),
            &[],
            None,
        )
    })
    .unwrap();
    assert_eq!(status, 401);
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

/// The result of the latest direct import of `model` from the ERP.
async fn erp_import(w: &crate::sync::World, model: &str) -> String {
    w.run(vec![junction_runtime::sync::batch::batch_job(
        "erp", model, true,
    )])
    .await;
    let mut batches: Vec<_> = w
        .jobs(junction_runtime::sync::IMPORT_BATCH)
        .await
        .into_iter()
        .filter(|j| j.backend.as_deref() == Some("erp") && j.args.contains(&format!("\"{model}\"")))
        .collect();
    batches.sort_by_key(|j| j.created_at);
    let last = batches.pop().expect("the ERP import ran");
    last.result
        .unwrap_or_else(|| panic!("the ERP import of {model} failed: {:?}", last.error_message))
}

/// The seed's own use case against the real ERP: the shop's customers and
/// orders go to Tryton as parties and draft sales with their lines (each
/// order's products created first, once, with the shop's stock, matched by
/// code); then a price and a stock level changed in Tryton come back to
/// the shop through the local records, and an incremental import of the
/// ERP picks up only that product; an order deleted locally cancels its
/// sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_orders_become_tryton_sales_and_erp_prices_and_stock_reach_the_shop() {
    let w = crate::sync::world().await;
    let t = Tryton::start().await;
    t.serve_as_erp(&w).await;
    w.import_all().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);

    let sales = t
        .search(
            "sale.sale",
            json!([]),
            &[
                "reference",
                "state",
                "party.email",
                "lines.product.code",
                "lines.quantity",
                "lines.unit_price",
                "lines.description",
            ],
        )
        .await;
    assert_eq!(
        sales.len(),
        crate::sync::small().orders,
        "one sale per shop order, none twice"
    );
    let order = w.shop.order(1).unwrap();
    let sale = sales
        .iter()
        .find(|s| s["reference"] == order["increment_id"])
        .expect("order 1 is a sale whose reference is its number");
    assert_eq!(sale["state"], "draft");
    assert_eq!(sale["party"]["email"], order["customer_email"]);
    let mut want: Vec<(String, f64, f64)> = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_string(),
                i["qty_ordered"].as_f64().unwrap(),
                i["price"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut got: Vec<(String, f64, f64)> = sale["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let price: f64 = l["unit_price"]["decimal"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (
                l["product"]["code"].as_str().unwrap().to_string(),
                l["quantity"].as_f64().unwrap(),
                price,
            )
        })
        .collect();
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, want, "the sale's lines are the order's");

    // Each party and product once, however many orders name it.
    let parties = t.search("party.party", json!([]), &["email"]).await;
    let emails: Vec<&str> = parties
        .iter()
        .filter_map(|p| p["email"].as_str())
        .filter(|e| !e.is_empty())
        .collect();
    let mut unique = emails.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(emails.len(), unique.len(), "no party twice: {emails:?}");
    assert_eq!(
        emails.len(),
        crate::sync::small().customers,
        "every shop customer is a party"
    );
    let products = t
        .search("product.product", json!([]), &["code", "salable"])
        .await;
    let mut codes: Vec<&str> = products.iter().filter_map(|p| p["code"].as_str()).collect();
    let n = codes.len();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(n, codes.len(), "no product twice");

    // The ERP's first import binds what it already holds and changes
    // nothing: the stock Tryton got with each product is the shop's.
    let sku = want[0].0.clone();
    let shop_stock =
        w.shop.product(&sku).unwrap()["extension_attributes"]["stock_item"]["qty"].clone();
    let first = erp_import(&w, "product").await;
    assert!(first.contains(" 0 created"), "{first}");
    assert_eq!(
        w.shop.product(&sku).unwrap()["extension_attributes"]["stock_item"]["qty"],
        shop_stock
    );

    // A price and a stock level changed in Tryton reach the shop.
    let variant = products.iter().find(|p| p["code"] == sku.as_str()).unwrap();
    let id = variant["id"].as_i64().unwrap();
    let (_, v) = t
        .rest("GET", &format!("product.product/{id}?f=template"), None)
        .await;
    let template = v["template"]
        .as_i64()
        .or_else(|| v["template"]["id"].as_i64())
        .unwrap();
    let (status, v) = t
        .rest(
            "PUT",
            &format!("product.template/{template}"),
            Some(json!({"list_price": {"__class__": "Decimal", "decimal": "99.50"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let storage = t
        .search(
            "stock.location",
            json!([["type", "=", "warehouse"]]),
            &["storage_location"],
        )
        .await[0]["storage_location"]
        .clone();
    let (status, inventory) = t
        .rest("POST", "stock.inventory", Some(json!({"location": storage, "lines": [["create", [{"product": id, "quantity": 7.0}]]]})))
        .await;
    assert_eq!(status, 200, "{inventory}");
    let (status, v) = t
        .rest(
            "POST",
            &format!("stock.inventory/{}/confirm", inventory["id"]),
            Some(json!({})),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {v}");
    let second = erp_import(&w, "product").await;
    assert!(
        second.contains(" 1 updated"),
        "only the changed product: {second}"
    );
    let shop = w.shop.product(&sku).unwrap();
    assert_eq!(shop["price"], json!(99.5), "{shop}");
    assert_eq!(
        shop["extension_attributes"]["stock_item"]["qty"].as_f64(),
        Some(7.0),
        "{shop}"
    );
    // A stock level alone (a done move; the variant's and the template's
    // write dates stay) is a change too.
    let (status, inventory) = t
        .rest(
            "POST",
            "stock.inventory",
            Some(json!({"location": storage, "lines": [["create", [{"product": id, "quantity": 3.0}]]]})),
        )
        .await;
    assert_eq!(status, 200, "{inventory}");
    t.rest(
        "POST",
        &format!("stock.inventory/{}/confirm", inventory["id"]),
        Some(json!({})),
    )
    .await;
    let third = erp_import(&w, "product").await;
    assert!(third.contains(" 1 updated"), "the moved product: {third}");
    assert_eq!(
        w.shop.product(&sku).unwrap()["extension_attributes"]["stock_item"]["qty"].as_f64(),
        Some(3.0)
    );
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);

    // An order deleted locally (as the shop's webhook would) cancels its
    // sale: Tryton keeps it, cancelled.
    let local = w
        .storage
        .binding("shop", "order", "1")
        .await
        .unwrap()
        .unwrap()
        .local_id;
    assert!(
        w.node
            .bus
            .delete_record("order", &local, Some("shop"))
            .await
            .unwrap()
    );
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let sale_id = sale["id"].clone();
    let (_, after) = t
        .rest("GET", &format!("sale.sale/{sale_id}?f=state"), None)
        .await;
    assert_eq!(after["state"], "cancelled", "{after}");
}

/// Tryton refuses a sale line whose product is not salable (a validation
/// of its own, server side): the orders with that product fail their jobs
/// with Tryton's message, and every other order is a sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tryton_validation_error_fails_only_its_job_with_trytons_message() {
    let w = crate::sync::world().await;
    let t = Tryton::start().await;
    let order = w.shop.order(1).unwrap();
    let sku = order["items"][0]["sku"].as_str().unwrap().to_string();
    let (status, v) = t
        .rest(
            "POST",
            "product.template",
            Some(
                json!({"name": "Not for sale", "default_uom": 1, "salable": false,
                        "products": [["create", [{"suffix_code": sku}]]]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    t.serve_as_erp(&w).await;
    w.import_all().await;
    let failed = w.failed().await;
    assert!(
        !failed.is_empty(),
        "the order with the unsalable product failed"
    );
    let with_sku: Vec<i64> = (1..=crate::sync::small().orders as i64)
        .filter(|id| {
            w.shop.order(*id).unwrap()["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["sku"] == sku.as_str())
        })
        .collect();
    assert_eq!(
        failed.len(),
        with_sku.len(),
        "only the orders with {sku}: {failed:?}"
    );
    for job in &failed {
        let message = job.error_message.as_deref().unwrap_or_default();
        assert!(job.args.contains("\"order\""), "{job:?}");
        assert!(
            message.contains("domain") && message.contains("Product"),
            "Tryton's own words: {message}"
        );
        assert_eq!(job.tries, 1, "a validation error is not retried: {job:?}");
    }
    let sales = t.search("sale.sale", json!([]), &["reference"]).await;
    assert_eq!(
        sales.len(),
        crate::sync::small().orders - with_sku.len(),
        "the refused sales are not in Tryton: {sales:?}"
    );
}

/// Tryton as the source: a sale entered in Tryton becomes a local order
/// with its customer and lines; an email changed on the party (a contact
/// mechanism, which leaves the party's own write date alone) is picked up
/// by the next incremental import; a deleted party is deleted locally by
/// reconciliation through the connector's id listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_entered_in_tryton_becomes_a_local_order_and_later_changes_follow() {
    let w = crate::sync::world().await;
    let t = Tryton::start().await;
    let (_, party) = t
        .rest(
            "POST",
            "party.party",
            Some(json!({"name": "Hedy Lamarr",
            "contact_mechanisms": [["create", [{"type": "email", "value": "hedy@example.com"}]]]})),
        )
        .await;
    let (_, template) = t
        .rest(
            "POST",
            "product.template?f=products",
            Some(
                json!({"name": "Radio", "default_uom": 1, "salable": true, "sale_uom": 1,
            "list_price": {"__class__": "Decimal", "decimal": "30"},
            "products": [["create", [{"suffix_code": "ERP-RADIO"}]]]}),
            ),
        )
        .await;
    let product = template["products"][0]
        .as_i64()
        .or_else(|| template["products"][0]["id"].as_i64())
        .unwrap();
    let (status, sale) = t
        .rest(
            "POST",
            "sale.sale",
            Some(json!({"party": party["id"], "lines": [["create", [
            {"type": "title", "description": "Radios"},
            {"type": "line", "product": product, "quantity": 2.0, "unit": 1, "description": "Radio",
             "unit_price": {"__class__": "Decimal", "decimal": "30"}}]]]})),
        )
        .await;
    assert_eq!(status, 200, "{sale}");
    t.serve_as_erp(&w).await;
    let result = erp_import(&w, "order").await;
    assert!(result.contains(" 1 created"), "{result}");
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    let local_id = w
        .storage
        .binding("erp", "order", &sale["id"].to_string())
        .await
        .unwrap()
        .expect("the sale is bound")
        .local_id;
    let order: Value = serde_json::from_str(
        &w.storage
            .record("order", &local_id)
            .await
            .unwrap()
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(order["email"], "hedy@example.com");
    assert_eq!(order["erp_state"], "draft");
    assert_eq!(order["total"], json!(60.0));
    assert_eq!(
        order["lines"].as_array().unwrap().len(),
        1,
        "the title line is not an order line: {order}"
    );
    assert_eq!(order["lines"][0]["sku"], "ERP-RADIO");
    assert!(order["lines"][0]["product_id"].is_string(), "{order}");
    let customer = order["customer_id"]
        .as_str()
        .expect("the party is the order's customer");

    // The email is a contact mechanism: the party's write_date stays.
    let mechanisms = t
        .search(
            "party.contact_mechanism",
            json!([["party", "=", party["id"]]]),
            &[],
        )
        .await;
    let (status, v) = t
        .rest(
            "PUT",
            &format!("party.contact_mechanism/{}", mechanisms[0]["id"]),
            Some(json!({"value": "hedy.lamarr@example.com"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let result = erp_import(&w, "customer").await;
    assert!(result.contains(" 1 updated"), "{result}");
    let c: Value = serde_json::from_str(
        &w.storage
            .record("customer", customer)
            .await
            .unwrap()
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(c["email"], "hedy.lamarr@example.com");

    // Deleted in Tryton: reconciliation deletes the local customer.
    let (status, v) = t
        .rest("DELETE", &format!("sale.sale/{}", sale["id"]), None)
        .await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = t
        .rest("DELETE", &format!("party.party/{}", party["id"]), None)
        .await;
    assert_eq!(status, 204, "{v}");
    w.run(vec![junction_runtime::sync::reconcile::reconcile_job(
        "erp", "customer", true,
    )])
    .await;
    assert!(
        w.storage
            .record("customer", customer)
            .await
            .unwrap()
            .is_none(),
        "deleted locally"
    );
}

/// `junction demo --erp` from the binary, on a shop of five products
/// (fewer than the ten new orders have lines, so they share): the ten new
/// shop orders land in Tryton as sales, the ERP's price change is what the
/// shop says at the end, and no job failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_erp_lands_shop_orders_in_tryton_and_an_erp_price_in_the_shop() {
    let data = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        // A relative demo folder, as README's command uses: its Tryton
        // data path must reach trytond's configuration absolute.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
            .current_dir(data.path())
            .env("JUNCTION_CACHE_DIR", crate::sync::cache_dir())
            .args(["demo", "--erp", "--products", "5", "--customers", "12"])
            .args(["--orders", "15", "--categories", "3", "--data", "demo"])
            .arg("--tryton-dir")
            .arg(TRYTON_DIR)
            .output()
            .unwrap();
        drop(data);
        out
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("10 orders placed in the shop → 10 Tryton sales"),
        "{text}"
    );
    let changed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tryton list price of DS-"))
        .and_then(|l| l.split_once(": "))
        .map(|(_, change)| change)
        .unwrap_or_else(|| panic!("no price change reported: {text}"));
    let new = changed
        .split(';')
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        text.contains(&format!("the shop now says {new}")),
        "the ERP's price {new} reached the shop: {text}"
    );
    assert!(text.contains(" 0 failed"), "{text}");
    assert!(text.contains("The ERP's data"), "{text}");
}
