//! The shop's catalogue, customers and orders, seeded deterministically.
//! Times are Magento's `YYYY-MM-DD HH:MM:SS` (UTC).

use std::collections::BTreeMap;

pub use junction_backend_kit::now_secs;
use junction_backend_kit::{Lcg, civil};
use serde_json::{Value, json};

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds.
pub fn magento_time(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// How big a shop to seed.
#[derive(Debug, Clone)]
pub struct Seed {
    pub seed: u64,
    pub categories: usize,
    pub products: usize,
    pub customers: usize,
    pub orders: usize,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            seed: 42,
            categories: 10,
            products: 200,
            customers: 50,
            orders: 40,
        }
    }
}

/// Everything the shop holds.
#[derive(Debug, Default)]
pub struct Data {
    pub categories: BTreeMap<i64, Value>,
    pub products: BTreeMap<String, Value>,
    pub customers: BTreeMap<i64, Value>,
    pub orders: BTreeMap<i64, Value>,
}

impl Data {
    /// Order `id` of `customer` for `lines` (SKU, quantity) at the
    /// products' current prices, placed at `t`, as Magento answers one.
    /// Unknown SKUs are left out.
    pub fn order(&self, id: i64, customer: i64, lines: &[(&str, i64)], t: &str) -> Value {
        let email = self
            .customers
            .get(&customer)
            .map(|c| c["email"].clone())
            .unwrap_or(Value::Null);
        let mut items = Vec::new();
        let mut total = 0.0;
        for (line, (sku, qty)) in lines.iter().enumerate() {
            let Some(product) = self.products.get(*sku) else {
                continue;
            };
            let price = product["price"].as_f64().unwrap_or(0.0);
            total += price * *qty as f64;
            items.push(json!({
                "item_id": id * 10 + line as i64, "order_id": id, "sku": sku, "name": product["name"],
                "product_id": product["id"], "qty_ordered": qty, "price": price, "row_total": price * *qty as f64,
            }));
        }
        json!({
            "entity_id": id, "increment_id": format!("{:09}", 100_000_000 + id), "state": "new",
            "status": "pending", "customer_id": customer, "customer_email": email,
            "grand_total": (total * 100.0).round() / 100.0, "order_currency_code": "EUR",
            "created_at": t, "updated_at": t, "items": items,
        })
    }
}

const WORDS: &[&str] = &[
    "Aurora", "Basalt", "Cedar", "Dune", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
];
const KINDS: &[&str] = &[
    "Lamp", "Chair", "Mug", "Backpack", "Kettle", "Scarf", "Notebook", "Clock",
];
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];

impl Data {
    pub fn seeded(seed: &Seed) -> Data {
        let mut rng = Lcg(seed.seed);
        let start = now_secs() - 30 * 86_400;
        let mut data = Data::default();
        for i in 0..seed.categories as i64 {
            let id = i + 3;
            let t = magento_time(start + i * 60);
            data.categories.insert(
                id,
                json!({
                    "id": id, "parent_id": 2, "name": format!("{} collection", WORDS[i as usize % WORDS.len()]),
                    "is_active": true, "position": i + 1, "level": 2, "path": format!("1/2/{id}"),
                    "created_at": t, "updated_at": t,
                }),
            );
        }
        for i in 0..seed.products as i64 {
            let sku = format!("DS-{:05}", i + 1);
            let t = magento_time(start + 3600 + i * 7);
            let name = format!(
                "{} {}",
                WORDS[rng.below(WORDS.len() as u64) as usize],
                KINDS[rng.below(KINDS.len() as u64) as usize]
            );
            let category = 3 + rng.below(seed.categories.max(1) as u64) as i64;
            let qty = rng.below(100) as i64;
            data.products.insert(
                sku.clone(),
                json!({
                    "id": i + 1, "sku": sku, "name": name, "attribute_set_id": 4,
                    "price": (rng.below(20_000) as f64 + 99.0) / 100.0,
                    "status": 1, "visibility": 4, "type_id": "simple", "weight": 1,
                    "created_at": t, "updated_at": t,
                    "extension_attributes": {
                        "category_links": [{"position": 0, "category_id": category.to_string()}],
                        "stock_item": {"item_id": i + 1, "product_id": i + 1, "stock_id": 1, "qty": qty, "is_in_stock": qty > 0},
                    },
                    "custom_attributes": [],
                }),
            );
        }
        for i in 0..seed.customers as i64 {
            let id = i + 1;
            let t = magento_time(start + 7200 + i * 11);
            let first = FIRST[rng.below(FIRST.len() as u64) as usize];
            let last = LAST[rng.below(LAST.len() as u64) as usize];
            data.customers.insert(
                id,
                json!({
                    "id": id, "group_id": 1, "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), id),
                    "firstname": first, "lastname": last, "store_id": 1, "website_id": 1,
                    "created_at": t, "updated_at": t, "addresses": [],
                }),
            );
        }
        let skus: Vec<String> = data.products.keys().cloned().collect();
        for i in 0..seed.orders as i64 {
            let id = i + 1;
            let t = magento_time(start + 10_800 + i * 13);
            let customer = 1 + rng.below(seed.customers.max(1) as u64) as i64;
            let mut lines = Vec::new();
            for _ in 0..(1 + rng.below(3)) {
                let Some(sku) = skus.get(rng.below(skus.len() as u64) as usize) else {
                    break;
                };
                lines.push((sku.as_str(), 1 + rng.below(3) as i64));
            }
            let order = data.order(id, customer, &lines, &t);
            data.orders.insert(id, order);
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_magento_shaped() {
        assert_eq!(magento_time(0), "1970-01-01 00:00:00");
        assert_eq!(magento_time(784_111_777), "1994-11-06 08:49:37");
        assert_eq!(magento_time(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn a_seed_gives_the_same_shop() {
        let a = Data::seeded(&Seed::default());
        let b = Data::seeded(&Seed::default());
        assert_eq!(a.products.len(), 200);
        assert_eq!(
            a.products["DS-00007"]["name"],
            b.products["DS-00007"]["name"]
        );
        assert!(
            a.orders[&1]["items"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
        );
    }
}
