//! {{name}} natively, on the SDK's fake host and scripted transport: what
//! it sends, and what it makes of the answers. `cargo test` runs these.

use junction_guest::serde_json::{Value, json};
use junction_guest::testing::{FakeHost, ScriptedTransport};
use junction_guest::{Adapter, Connector, Error, Mapper, RemoteRecord};

use {{module}}::Companies;

fn token() -> Value {
    json!({"access_token": "tok", "expires_in": 1800})
}

fn company() -> Value {
    json!({
        "id": "5",
        "properties": {"name": "Acme", "domain": "acme.example", "city": "Lyon", "country": "FR"},
        "updatedAt": "2026-02-01T00:00:00.000Z",
    })
}

#[test]
fn the_manifest_claims_companies_of_crm_3() {
    let m = Companies::manifest();
    assert_eq!(m.backend_kind, "crm");
    assert_eq!(
        m.models.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["company"]
    );
}

#[test]
fn search_sends_the_token_the_page_size_and_updated_since() {
    let script = ScriptedTransport::new().json(200, token()).json(
        200,
        json!({"results": [company()], "paging": {"next": {"after": "1"}}}),
    );
    let host = FakeHost::new("http://crm.test").transport(script);
    let since = json!({"updated-since": "2026-01-01T00:00:00Z"});
    let (page, host) = host.run(|| Companies::search("company", &since, None, 500));
    let page = page.unwrap();
    assert_eq!(page.items[0].external_id, "5");
    assert_eq!(
        page.items[0].updated_at.as_deref(),
        Some("2026-02-01T00:00:00.000Z")
    );
    assert_eq!(page.next_cursor.as_deref(), Some("1"));
    let sent = &host.sent()[1];
    assert_eq!(sent.url, "http://crm.test/crm/v3/objects/companies/search");
    assert!(
        sent.headers
            .contains(&("authorization".into(), "Bearer tok".into()))
    );
    let body: Value =
        junction_guest::serde_json::from_slice(sent.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["limit"], 200);
    assert_eq!(
        body["filterGroups"][0]["filters"][0]["value"],
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn read_asks_for_the_properties() {
    let script = ScriptedTransport::new()
        .json(200, token())
        .json(200, company());
    let host = FakeHost::new("http://crm.test").transport(script);
    let (found, host) = host.run(|| Companies::read("company", "5"));
    assert_eq!(found.unwrap().data, company());
    assert!(
        host.sent()[1]
            .url
            .starts_with("http://crm.test/crm/v3/objects/companies/5?properties=name")
    );
}

#[test]
fn an_unknown_model_is_refused_by_name() {
    let host =
        FakeHost::new("http://crm.test").transport(ScriptedTransport::new().json(200, token()));
    let (found, _) = host.run(|| Companies::search("deal", &json!({}), None, 10));
    assert!(matches!(found, Err(Error::Permanent(m)) if m.contains("knows company")));
}

#[test]
fn a_company_maps_to_local_fields() {
    let record = RemoteRecord {
        external_id: "5".into(),
        updated_at: None,
        data: company(),
    };
    let (mapped, _) = FakeHost::new("http://crm.test")
        .run(|| Companies::map_import("company", &record, &junction_guest::host::HostBinder));
    assert_eq!(
        mapped.unwrap(),
        json!({"name": "Acme", "domain": "acme.example", "city": "Lyon", "country": "FR"})
    );
}
