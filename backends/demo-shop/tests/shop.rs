//! The shop over real HTTP on 127.0.0.1: auth, search criteria, paging,
//! updates, order actions, the rate limit and fault injection.

use std::time::Duration;

use junction_backend_kit::exchange_json;
use junction_demo_shop::{Faults, Seed, Shop, ShopConfig};
use serde_json::{Value, json};

/// One HTTP/1.1 exchange; `None` when the connection was dropped.
async fn call(
    shop: &Shop,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Vec<String>, Value)> {
    exchange_json(shop.addr, method, path, token, body).await
}

async fn shop(config: ShopConfig) -> (Shop, String) {
    let shop = Shop::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, _, token) = call(
        &shop,
        "POST",
        "/rest/V1/integration/admin/token",
        None,
        Some(json!({"username": "admin", "password": "admin123"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    (shop, token.as_str().unwrap().to_string())
}

#[tokio::test]
async fn auth_is_required_and_checked() {
    let (shop, _token) = shop(ShopConfig::default()).await;
    let (status, _, body) = call(&shop, "GET", "/rest/V1/products", None, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("isn't authorized")
    );
    let (status, _, _) = call(&shop, "GET", "/rest/V1/products", Some("forged"), None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _, _) = call(
        &shop,
        "POST",
        "/rest/V1/integration/admin/token",
        None,
        Some(json!({"username": "admin", "password": "nope"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn search_criteria_filter_sort_and_page_like_magento() {
    let (shop, token) = shop(ShopConfig::default()).await;
    let t = Some(token.as_str());
    let q = "/rest/V1/products?searchCriteria[pageSize]=50&searchCriteria[currentPage]=2\
             &searchCriteria[sortOrders][0][field]=id&searchCriteria[sortOrders][0][direction]=DESC";
    let (status, _, page) = call(&shop, "GET", q, t, None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert_eq!(page["items"][0]["id"], 150);
    // Past the last page, Magento answers the last page again.
    let q = "/rest/V1/products?searchCriteria[pageSize]=50&searchCriteria[currentPage]=9";
    let (_, _, past) = call(&shop, "GET", q, t, None).await.unwrap();
    assert_eq!(past["items"][0]["id"], 151);
    // Encoded brackets, a gt filter on updated_at, and OR within a group.
    assert!(shop.edit_product("DS-00003", |p| p["price"] = json!(1.5)));
    let since = shop.product("DS-00003").unwrap()["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    let q = format!(
        "/rest/V1/products?searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=updated_at\
         &searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bvalue%5D={}\
         &searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bcondition_type%5D=gteq",
        since.replace(' ', "%20")
    );
    let (_, _, changed) = call(&shop, "GET", &q, t, None).await.unwrap();
    assert_eq!(changed["total_count"], 1, "{changed}");
    assert_eq!(changed["items"][0]["sku"], "DS-00003");
    let q = "/rest/V1/customers/search?searchCriteria[filter_groups][0][filters][0][field]=id\
             &searchCriteria[filter_groups][0][filters][0][value]=3\
             &searchCriteria[filter_groups][0][filters][1][field]=id\
             &searchCriteria[filter_groups][0][filters][1][value]=5";
    let (_, _, either) = call(&shop, "GET", q, t, None).await.unwrap();
    assert_eq!(either["total_count"], 2);
    let q = "/rest/V1/products?searchCriteria[filter_groups][0][filters][0][field]=sku\
             &searchCriteria[filter_groups][0][filters][0][condition_type]=between";
    let (status, _, bad) = call(&shop, "GET", q, t, None).await.unwrap();
    assert_eq!(status, 400);
    assert!(bad["message"].as_str().unwrap().contains("between"));
}

#[tokio::test]
async fn products_update_and_orders_change_state() {
    let (shop, token) = shop(ShopConfig::default()).await;
    let t = Some(token.as_str());
    let (status, _, missing) = call(&shop, "GET", "/rest/V1/products/NOPE", t, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("doesn't exist")
    );
    let update =
        json!({"product": {"price": 9.99, "extension_attributes": {"stock_item": {"qty": 3}}}});
    let (status, _, p) = call(&shop, "PUT", "/rest/V1/products/DS-00001", t, Some(update))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(p["price"], 9.99);
    assert_eq!(p["extension_attributes"]["stock_item"]["qty"], 3);
    let (status, _, ok) = call(&shop, "POST", "/rest/V1/orders/1/hold", t, None)
        .await
        .unwrap();
    assert_eq!((status, ok), (200, json!(true)));
    assert_eq!(shop.order(1).unwrap()["state"], "holded");
    let (status, _, _) = call(&shop, "POST", "/rest/V1/orders/1/cancel", t, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _, _) = call(&shop, "POST", "/rest/V1/orders/1/unhold", t, None)
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (_, _, order) = call(&shop, "GET", "/rest/V1/orders/2", t, None)
        .await
        .unwrap();
    assert!(order["items"].as_array().is_some_and(|i| !i.is_empty()));
    assert!(order["customer_id"].as_i64().is_some());
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let config = ShopConfig {
        rate_limit: Some(5),
        seed: Seed {
            products: 5,
            ..Seed::default()
        },
        ..ShopConfig::default()
    };
    let (shop, token) = shop(config).await;
    let mut limited = None;
    for _ in 0..20 {
        let (status, headers, _) = call(&shop, "GET", "/rest/V1/products", Some(&token), None)
            .await
            .unwrap();
        if status == 429 {
            limited = Some(headers);
            break;
        }
    }
    let headers = limited.expect("a burst over the limit is refused");
    assert!(
        headers.contains(&"retry-after: 1".to_string()),
        "{headers:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = call(&shop, "GET", "/rest/V1/products", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "the limit resets");
}

#[tokio::test]
async fn faults_can_be_switched_on_and_off() {
    let (shop, token) = shop(ShopConfig::default()).await;
    shop.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let (status, _, _) = call(&shop, "GET", "/rest/V1/products", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(status, 503);
    shop.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    assert!(
        call(&shop, "GET", "/rest/V1/products", Some(&token), None)
            .await
            .is_none()
    );
    shop.set_faults(Faults::default());
    let (status, _, _) = call(&shop, "GET", "/rest/V1/products", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}
