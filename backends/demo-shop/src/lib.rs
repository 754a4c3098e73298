//! `demo-shop`: a reference shop backend shaped like the Magento 2 REST API
//! (same paths, `searchCriteria` syntax and JSON field names for the parts
//! it covers), for Junction's demo, end-to-end tests and benchmarks.
//!
//! Covered: `POST /rest/V1/integration/admin/token`; categories
//! (`GET /rest/V1/categories/list`, `GET /rest/V1/categories/{id}`), products (`GET /rest/V1/products`,
//! `GET|PUT|DELETE /rest/V1/products/{sku}`), customers
//! (`GET /rest/V1/customers/search`, `GET /rest/V1/customers/{id}`), orders
//! (`GET /rest/V1/orders`, `GET /rest/V1/orders/{id}`,
//! `POST /rest/V1/orders/{id}/hold|unhold|cancel`, `POST
//! /rest/V1/order/{id}/ship` with tracking numbers), `fields=items[a,b]`
//! to list only some fields. Bearer-token auth on everything but the token
//! endpoint, a rate limit answering 429 with `Retry-After`, switchable
//! faults (latency, 5xx, dropped connections), a legacy mode that serves
//! products in an older API version's shape, and signed webhooks for the
//! changes a shop admin makes (`ShopConfig::webhook`).

pub mod data;
pub mod search;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use junction_backend_kit::{Body, Gate, Refusal, WebhookSender, reply, spawn_server};
use serde_json::{Value, json};

pub use data::Seed;
use data::{Data, magento_time, now_secs};
pub use junction_backend_kit::{Faults, WebhookTarget};

/// How the shop behaves.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    pub seed: Seed,
    pub username: String,
    pub password: String,
    /// Requests per second before 429s; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Serve products in the older (2.2) shape: stock as top-level `qty`
    /// and `is_in_stock`, categories as `category_ids`, no
    /// `extension_attributes`. Connectors need a mapper for that version.
    pub legacy: bool,
    /// Where to send a signed webhook for each change a shop admin makes
    /// (`{"entity": "product", "id": SKU, "event": "updated"}`).
    pub webhook: Option<WebhookTarget>,
}

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            seed: Seed::default(),
            username: "admin".into(),
            password: "admin123".into(),
            rate_limit: None,
            legacy: false,
            webhook: None,
        }
    }
}

struct State {
    config: ShopConfig,
    data: Mutex<Data>,
    tokens: Mutex<Vec<String>>,
    gate: Gate,
    hooks: Option<WebhookSender>,
}

/// A running shop.
#[derive(Clone)]
pub struct Shop {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop").field("addr", &self.addr).finish()
    }
}

impl Shop {
    /// Seed the data and serve on `addr` (use port 0 for any free port).
    pub async fn start(config: ShopConfig, addr: SocketAddr) -> std::io::Result<Shop> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            data: Mutex::new(Data::seeded(&config.seed)),
            gate: Gate::new(config.rate_limit),
            hooks: config.webhook.clone().map(WebhookSender::start),
            config,
            tokens: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        spawn_server(listener, move |req| {
            let s = s.clone();
            async move { serve(&s, req).await }
        });
        Ok(Shop { addr, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An access token, as an admin creating an integration token would
    /// get one (the same as `POST /rest/V1/integration/admin/token`).
    pub fn issue_token(&self) -> String {
        issue(&self.state)
    }

    /// A new order placed by customer `customer` for `lines` (SKU,
    /// quantity), as a shopper would place it; its id, or `None` when the
    /// customer or every SKU is unknown.
    pub fn place_order(&self, customer: i64, lines: &[(&str, i64)]) -> Option<i64> {
        let mut data = self.state.data.lock().unwrap_or_else(|p| p.into_inner());
        if !data.customers.contains_key(&customer) {
            return None;
        }
        let id = data.orders.keys().next_back().copied().unwrap_or(0) + 1;
        let order = data.order(id, customer, lines, &magento_time(now_secs()));
        if order["items"].as_array().is_none_or(Vec::is_empty) {
            return None;
        }
        data.orders.insert(id, order);
        drop(data);
        self.notify("order", &id.to_string(), "updated");
        Some(id)
    }

    /// Delete a product as a shop admin would; `false` if there was none.
    pub fn remove_product(&self, sku: &str) -> bool {
        let mut data = self.state.data.lock().unwrap_or_else(|p| p.into_inner());
        let removed = data.products.remove(sku).is_some();
        if removed {
            self.notify("product", sku, "deleted");
        }
        removed
    }

    /// Send the webhook for a change, when the shop sends webhooks.
    fn notify(&self, entity: &str, id: &str, event: &str) {
        if let Some(hooks) = &self.state.hooks {
            hooks.send(json!({"entity": entity, "id": id, "event": event}));
        }
    }

    /// What the webhook sender did so far (`None`: it sends none).
    pub fn webhooks_sent(&self) -> Option<junction_backend_kit::webhook::Sent> {
        self.state.hooks.as_ref().map(WebhookSender::sent)
    }

    /// Requests answered 429 so far.
    pub fn rate_limited(&self) -> u64 {
        self.state.gate.rate_limited()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.gate.set_faults(faults);
    }

    /// Change a product as a shop admin would (its `updated_at` moves).
    pub fn edit_product(&self, sku: &str, change: impl FnOnce(&mut Value)) -> bool {
        self.edit("product", sku, |d| d.products.get_mut(sku), change)
    }

    /// Change the `entity` `id` that `find` finds as a shop admin would:
    /// its `updated_at` moves and the webhook, if any, is sent.
    fn edit(
        &self,
        entity: &str,
        id: &str,
        find: impl FnOnce(&mut Data) -> Option<&mut Value>,
        change: impl FnOnce(&mut Value),
    ) -> bool {
        let mut data = self.state.data.lock().unwrap_or_else(|p| p.into_inner());
        let Some(item) = find(&mut data) else {
            return false;
        };
        change(item);
        item["updated_at"] = json!(magento_time(now_secs()));
        drop(data);
        self.notify(entity, id, "updated");
        true
    }

    /// A copy of a product, or `None`.
    pub fn product(&self, sku: &str) -> Option<Value> {
        self.state
            .data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .products
            .get(sku)
            .cloned()
    }

    /// Change an order as the shop would (its `updated_at` moves).
    pub fn edit_order(&self, id: i64, change: impl FnOnce(&mut Value)) -> bool {
        self.edit("order", &id.to_string(), |d| d.orders.get_mut(&id), change)
    }

    pub fn order(&self, id: i64) -> Option<Value> {
        self.state
            .data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .orders
            .get(&id)
            .cloned()
    }

    /// Change a customer as a shop admin would (its `updated_at` moves).
    pub fn edit_customer(&self, id: i64, change: impl FnOnce(&mut Value)) -> bool {
        self.edit(
            "customer",
            &id.to_string(),
            |d| d.customers.get_mut(&id),
            change,
        )
    }

    /// A customer as stored, or `None`.
    pub fn customer(&self, id: i64) -> Option<Value> {
        self.state
            .data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .customers
            .get(&id)
            .cloned()
    }
}

/// The order a path's `id` names, to change it.
fn order_mut<'a>(data: &'a mut Data, id: &str) -> Option<&'a mut Value> {
    id.parse::<i64>()
        .ok()
        .and_then(|id| data.orders.get_mut(&id))
}

/// Magento's answer for an id it does not have.
fn no_such_entity() -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        "The entity that was requested doesn't exist. Verify the entity and try again.",
    )
}

fn message(status: StatusCode, text: &str) -> Response<Body> {
    reply(status, json!({ "message": text }))
}

async fn serve(state: &State, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    let refused = state
        .gate
        .admit(|why| match why {
            Refusal::Unavailable => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable",
            ),
            Refusal::RateLimited => message(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests. Try again later.",
            ),
        })
        .await?;
    match refused {
        Some(response) => Ok(response),
        None => Ok(route(state, req).await),
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            state
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|k| k == t)
        });
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return message(StatusCode::BAD_REQUEST, "Could not read the request body."),
    };
    let segments: Vec<&str> = path.trim_start_matches("/rest/V1/").split('/').collect();
    if method == Method::POST && path == "/rest/V1/integration/admin/token" {
        return token(state, &body);
    }
    if !path.starts_with("/rest/V1/") {
        return message(StatusCode::NOT_FOUND, "Request does not match any route.");
    }
    if !authorized {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "The consumer isn't authorized to access %resources.", "parameters": {"resources": "Magento_Backend::admin"}}),
        );
    }
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let search = |items: &mut dyn Iterator<Item = &Value>, shape: &dyn Fn(&Value) -> Value| {
        match search::parse(&query) {
            Ok(c) => {
                let echo = json!({ "query": query });
                let mut found = c.apply(items, shape, echo);
                // `fields=items[sku,id]`: only those fields of each item.
                if let Some(keep) = search::item_fields(&query)
                    && let Some(items) = found["items"].as_array_mut()
                {
                    for item in items {
                        let mut kept = serde_json::Map::new();
                        for f in &keep {
                            if let Some(v) = item.get(f) {
                                kept.insert(f.clone(), v.clone());
                            }
                        }
                        *item = Value::Object(kept);
                    }
                }
                reply(StatusCode::OK, found)
            }
            Err(e) => message(
                StatusCode::BAD_REQUEST,
                &format!("Invalid search criteria: {e}"),
            ),
        }
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["categories", "list"]) => {
            search(&mut data.categories.values(), &Value::clone)
        }
        (&Method::GET, ["products"]) => {
            search(&mut data.products.values(), &|p| shaped(&state.config, p))
        }
        (&Method::GET, ["categories", id]) => {
            match id
                .parse::<i64>()
                .ok()
                .and_then(|id| data.categories.get(&id))
            {
                Some(c) => reply(StatusCode::OK, c.clone()),
                None => message(
                    StatusCode::NOT_FOUND,
                    &format!("No such entity with id = {id}"),
                ),
            }
        }
        (&Method::GET, ["customers", "search"]) => {
            search(&mut data.customers.values(), &Value::clone)
        }
        (&Method::GET, ["orders"]) => search(&mut data.orders.values(), &Value::clone),
        (&Method::GET, ["products", sku]) => {
            match data.products.get(&search::percent_decode(sku)) {
                Some(p) => reply(StatusCode::OK, shaped(&state.config, p)),
                None => message(
                    StatusCode::NOT_FOUND,
                    "The product that was requested doesn't exist. Verify the product and try again.",
                ),
            }
        }
        (&Method::PUT, ["products", sku]) => {
            let sku = search::percent_decode(sku);
            let Ok(update) = serde_json::from_slice::<Value>(&body) else {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Decoding error: the body is not JSON.",
                );
            };
            let Some(fields) = update.get("product").and_then(Value::as_object) else {
                return message(
                    StatusCode::BAD_REQUEST,
                    "\"product\" is required. Enter and try again.",
                );
            };
            let Some(product) = data.products.get_mut(&sku) else {
                return message(
                    StatusCode::NOT_FOUND,
                    "The product that was requested doesn't exist. Verify the product and try again.",
                );
            };
            for (k, v) in fields {
                match k.as_str() {
                    "sku" | "id" => {}
                    "qty" | "is_in_stock" if state.config.legacy => {
                        product["extension_attributes"]["stock_item"][k.as_str()] = v.clone();
                    }
                    "extension_attributes" => {
                        if let Some(stock) = v.get("stock_item") {
                            let item = &mut product["extension_attributes"]["stock_item"];
                            for (sk, sv) in stock.as_object().into_iter().flatten() {
                                item[sk] = sv.clone();
                            }
                        }
                    }
                    _ => product[k] = v.clone(),
                }
            }
            product["updated_at"] = json!(magento_time(now_secs()));
            reply(StatusCode::OK, shaped(&state.config, product))
        }
        (&Method::DELETE, ["products", sku]) => {
            match data.products.remove(&search::percent_decode(sku)) {
                Some(_) => reply(StatusCode::OK, json!(true)),
                None => message(
                    StatusCode::NOT_FOUND,
                    "The product that was requested doesn't exist. Verify the product and try again.",
                ),
            }
        }
        (&Method::GET, ["customers", id]) => match id
            .parse::<i64>()
            .ok()
            .and_then(|id| data.customers.get(&id))
        {
            Some(c) => reply(StatusCode::OK, c.clone()),
            None => message(StatusCode::NOT_FOUND, "No such entity with customerId"),
        },
        (&Method::GET, ["orders", id]) => {
            match id.parse::<i64>().ok().and_then(|id| data.orders.get(&id)) {
                Some(o) => reply(StatusCode::OK, o.clone()),
                None => no_such_entity(),
            }
        }
        (&Method::POST, ["orders", id, action @ ("hold" | "unhold" | "cancel")]) => {
            let Some(order) = order_mut(&mut data, id) else {
                return no_such_entity();
            };
            let (state_now, allowed) = match *action {
                "hold" => ("holded", order["state"] != "canceled"),
                "unhold" => ("new", order["state"] == "holded"),
                _ => ("canceled", order["state"] != "canceled"),
            };
            if !allowed {
                return message(
                    StatusCode::BAD_REQUEST,
                    &format!("You can't {action} this order."),
                );
            }
            order["state"] = json!(state_now);
            order["status"] = json!(state_now);
            order["updated_at"] = json!(magento_time(now_secs()));
            reply(StatusCode::OK, json!(true))
        }
        (&Method::POST, ["order", id, "ship"]) => {
            let Some(order) = order_mut(&mut data, id) else {
                return no_such_entity();
            };
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(tracks) = request["tracks"].as_array().filter(|t| {
                t.iter()
                    .all(|t| t["track_number"].as_str().is_some_and(|n| !n.is_empty()))
            }) else {
                return message(
                    StatusCode::BAD_REQUEST,
                    "\"tracks\" must list tracks, each with a \"track_number\".",
                );
            };
            if order["state"] == "canceled" {
                return message(StatusCode::BAD_REQUEST, "You can't create a shipment.");
            }
            let shipped = order["tracks"].as_array().map_or(0, Vec::len);
            let mut all = order["tracks"].as_array().cloned().unwrap_or_default();
            all.extend(tracks.iter().cloned());
            order["tracks"] = Value::Array(all);
            order["state"] = json!("complete");
            order["status"] = json!("complete");
            order["updated_at"] = json!(magento_time(now_secs()));
            reply(StatusCode::OK, json!(shipped as i64 + 1))
        }
        _ => message(StatusCode::NOT_FOUND, "Request does not match any route."),
    }
}

/// A product as this shop's API version shows it.
fn shaped(config: &ShopConfig, product: &Value) -> Value {
    if !config.legacy {
        return product.clone();
    }
    let mut p = product.clone();
    let ext = p
        .as_object_mut()
        .and_then(|o| o.remove("extension_attributes"))
        .unwrap_or(Value::Null);
    p["qty"] = ext["stock_item"]["qty"].clone();
    p["is_in_stock"] = ext["stock_item"]["is_in_stock"].clone();
    p["category_ids"] = Value::Array(
        ext["category_links"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["category_id"].clone())
            .collect(),
    );
    p
}

fn issue(state: &State) -> String {
    let mut tokens = state.tokens.lock().unwrap_or_else(|p| p.into_inner());
    let token = format!(
        "ds{:016x}{:04}",
        now_secs().unsigned_abs().wrapping_mul(0x9E37_79B9),
        tokens.len()
    );
    tokens.push(token.clone());
    token
}

fn token(state: &State, body: &[u8]) -> Response<Body> {
    let creds: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let ok = creds["username"] == state.config.username.as_str()
        && creds["password"] == state.config.password.as_str();
    if !ok {
        return message(
            StatusCode::UNAUTHORIZED,
            "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later.",
        );
    }
    reply(StatusCode::OK, json!(issue(state)))
}
