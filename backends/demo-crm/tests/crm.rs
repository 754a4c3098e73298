//! The CRM over real HTTP on 127.0.0.1: OAuth2 client credentials, token
//! expiry, cursor pagination, search, writes and their validation, the
//! rate limit and fault injection.

use std::time::Duration;

use junction_backend_kit::{exchange, exchange_json};
use junction_demo_crm::{Crm, CrmConfig, Faults, Kind, Seed};
use serde_json::{Value, json};

async fn crm(config: CrmConfig) -> Crm {
    Crm::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// One HTTP/1.1 exchange; `None` when the connection was dropped.
async fn call(
    crm: &Crm,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Vec<String>, Value)> {
    exchange_json(crm.addr, method, path, token, body).await
}

async fn token(crm: &Crm) -> String {
    let (status, _, body) = exchange(
        crm.addr,
        "POST",
        "/oauth/v1/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "grant_type=client_credentials&client_id=junction&client_secret=crm-secret",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn client_credentials_give_a_token_and_wrong_ones_are_refused() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    let (status, _, _) = call(&crm, "GET", "/crm/v3/objects/contacts", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    // HTTP Basic works as well (RFC 6749 §2.3.1): "junction:crm-secret".
    let (status, _, body) = exchange(
        crm.addr,
        "POST",
        "/oauth/v1/token",
        &[("Authorization", "Basic anVuY3Rpb246Y3JtLXNlY3JldA==")],
        "grant_type=client_credentials",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = exchange(
        crm.addr,
        "POST",
        "/oauth/v1/token",
        &[],
        "grant_type=client_credentials&client_id=junction&client_secret=nope",
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("invalid_client"), "{body}");
    let (status, _, body) = exchange(
        crm.addr,
        "POST",
        "/oauth/v1/token",
        &[],
        "grant_type=password",
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("unsupported_grant_type"), "{body}");
    assert_eq!(crm.tokens_issued(), 2);
    let (status, _, body) = call(&crm, "GET", "/crm/v3/objects/contacts", None, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
}

#[tokio::test]
async fn expired_tokens_are_told_apart_from_missing_ones() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    crm.expire_tokens();
    let (status, _, body) = call(&crm, "GET", "/crm/v3/objects/deals", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    let fresh = token(&crm).await;
    let (status, _, _) = call(&crm, "GET", "/crm/v3/objects/deals", Some(&fresh), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_list_cursor_walks_every_object_once() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/contacts?limit=30&after={a}"),
            None => "/crm/v3/objects/contacts?limit=30".into(),
        };
        let (status, _, body) = call(&crm, "GET", &path, Some(&t), None).await.unwrap();
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
            assert!(r["properties"]["email"].is_string());
            assert!(r["updatedAt"].as_str().unwrap().ends_with('Z'));
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 100);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 100);
    let (status, _, body) = call(
        &crm,
        "GET",
        "/crm/v3/objects/contacts?limit=500",
        Some(&t),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("limit"));
    let (status, _, _) = call(
        &crm,
        "GET",
        "/crm/v3/objects/contacts?after=xyz",
        Some(&t),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    let (status, _, body) = call(&crm, "GET", "/crm/v3/objects/tickets", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("contacts, companies or deals")
    );
}

#[tokio::test]
async fn creates_updates_and_deletes_validate_their_input() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    let new = json!({"properties": {"email": "new.person@example.com", "firstname": "New", "lastname": "Person"}});
    let (status, _, created) = call(
        &crm,
        "POST",
        "/crm/v3/objects/contacts",
        Some(&t),
        Some(new.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["properties"]["firstname"], "New");
    let (status, _, body) = call(
        &crm,
        "POST",
        "/crm/v3/objects/contacts",
        Some(&t),
        Some(new),
    )
    .await
    .unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
    let (status, _, body) = call(
        &crm,
        "POST",
        "/crm/v3/objects/contacts",
        Some(&t),
        Some(json!({"properties": {"email": "x@example.com", "shoe_size": "44"}})),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("shoe_size"),
        "{body}"
    );
    let (status, _, body) = call(
        &crm,
        "POST",
        "/crm/v3/objects/contacts",
        Some(&t),
        Some(json!({"email": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("properties"));

    // By email, as connectors look contacts up.
    let (status, _, by_email) = call(
        &crm,
        "GET",
        "/crm/v3/objects/contacts/NEW.PERSON%40example.com?idProperty=email",
        Some(&t),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(by_email["id"], id.as_str());

    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _, updated) = call(
        &crm,
        "PATCH",
        &format!("/crm/v3/objects/contacts/{id}"),
        Some(&t),
        Some(json!({"properties": {"phone": "+351 21 000 0000"}})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(updated["properties"]["phone"], "+351 21 000 0000");
    assert_eq!(updated["properties"]["firstname"], "New");
    assert!(updated["updatedAt"].as_str().unwrap() > created["updatedAt"].as_str().unwrap());
    assert_eq!(
        crm.contact_by_email("new.person@example.com").unwrap()["id"],
        id.as_str()
    );

    let (status, _, _) = call(
        &crm,
        "DELETE",
        &format!("/crm/v3/objects/contacts/{id}"),
        Some(&t),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 204);
    let (status, _, body) = call(
        &crm,
        "GET",
        &format!("/crm/v3/objects/contacts/{id}"),
        Some(&t),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    assert!(crm.object(Kind::Contacts, &id).is_none());
}

#[tokio::test]
async fn search_filters_on_change_time_sorts_and_pages() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    let ids: Vec<String> = crm
        .objects(Kind::Companies)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let since = junction_backend_kit::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    for id in &ids[..5] {
        assert!(crm.edit(Kind::Companies, id, json!({"city": "Porto"})));
    }
    let mut found = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut request = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 2,
        });
        if let Some(a) = &after {
            request["after"] = a.clone();
        }
        let (status, _, body) = call(
            &crm,
            "POST",
            "/crm/v3/objects/companies/search",
            Some(&t),
            Some(request),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 5);
        for r in body["results"].as_array().unwrap() {
            assert_eq!(r["properties"]["city"], "Porto");
            found.push(r["id"].as_str().unwrap().to_string());
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(json!(a)),
            None => break,
        }
    }
    assert_eq!(found, ids[..5].to_vec(), "in change order, each once");

    // An ISO time works as well as milliseconds; OR across groups.
    let (_, _, body) = call(
        &crm,
        "POST",
        "/crm/v3/objects/companies/search",
        Some(&t),
        Some(json!({"filterGroups": [
            {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Porto"}]},
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": "2999-01-01T00:00:00Z"}]}
        ], "limit": 100})),
    )
    .await
    .unwrap();
    assert_eq!(body["total"], 5);
    let (status, _, body) = call(
        &crm,
        "POST",
        "/crm/v3/objects/companies/search",
        Some(&t),
        Some(json!({"filterGroups": [{"filters": [{"propertyName": "city", "operator": "LIKE", "value": "P"}]}]})),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("LIKE"));
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let crm = crm(CrmConfig {
        rate_limit: Some(5),
        seed: Seed {
            contacts: 3,
            ..Seed::default()
        },
        ..CrmConfig::default()
    })
    .await;
    let t = token(&crm).await;
    let mut limited = None;
    for _ in 0..20 {
        let (status, headers, body) = call(&crm, "GET", "/crm/v3/objects/contacts", Some(&t), None)
            .await
            .unwrap();
        if status == 429 {
            limited = Some((headers, body));
            break;
        }
    }
    let (headers, body) = limited.expect("a 429 within 20 quick requests at 5/s");
    assert!(headers.iter().any(|h| h == "retry-after: 1"), "{headers:?}");
    assert_eq!(body["category"], "RATE_LIMITS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = call(&crm, "GET", "/crm/v3/objects/contacts", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn faults_give_503s_and_dropped_connections() {
    let crm = crm(CrmConfig::default()).await;
    let t = token(&crm).await;
    crm.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let (status, headers, body) = call(&crm, "GET", "/crm/v3/objects/deals", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(headers.iter().any(|h| h == "retry-after: 1"));
    assert_eq!(body["category"], "SERVICE_UNAVAILABLE");
    crm.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    assert!(
        call(&crm, "GET", "/crm/v3/objects/deals", Some(&t), None)
            .await
            .is_none()
    );
    crm.set_faults(Faults::default());
    let (status, _, _) = call(&crm, "GET", "/crm/v3/objects/deals", Some(&t), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}
