//! The CRM's objects — contacts, companies, deals — their properties, and
//! a deterministic seed. Times are HubSpot's: ISO 8601 UTC with
//! milliseconds in `createdAt`/`updatedAt`, the same in the
//! `createdate`/`lastmodifieddate` properties.

use std::collections::BTreeMap;

use junction_backend_kit::{Lcg, civil, unix_secs};
use serde_json::{Map, Value, json};

/// The object types, by the path segment that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Contacts,
    Companies,
    Deals,
}

impl Kind {
    pub fn from_path(segment: &str) -> Option<Kind> {
        match segment {
            "contacts" => Some(Kind::Contacts),
            "companies" => Some(Kind::Companies),
            "deals" => Some(Kind::Deals),
            _ => None,
        }
    }

    /// Properties a client may set; anything else is a validation error.
    pub fn writable(self) -> &'static [&'static str] {
        match self {
            Kind::Contacts => &[
                "email",
                "firstname",
                "lastname",
                "phone",
                "city",
                "country",
                "lifecyclestage",
                "associatedcompanyid",
            ],
            Kind::Companies => &["name", "domain", "industry", "city", "country"],
            Kind::Deals => &[
                "dealname",
                "amount",
                "dealstage",
                "pipeline",
                "closedate",
                "associatedcompanyid",
                "associatedcontactid",
            ],
        }
    }

    /// What a 404 or a log line calls one of these.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Contacts => "contact",
            Kind::Companies => "company",
            Kind::Deals => "deal",
        }
    }
}

/// `2026-12-02T19:55:33.123Z` for Unix milliseconds.
pub fn iso_ms(ms: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(ms.div_euclid(1000));
    format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
        ms.rem_euclid(1000)
    )
}

/// Unix milliseconds of an ISO 8601 UTC time (`Z`, optional fraction) or
/// of a plain millisecond count, as HubSpot's filters take both.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t = text.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms = frac.parse::<i64>().ok()?;
    Some(unix_secs(y, mo, da, hh, mm, ss) * 1000 + ms)
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: u64,
    pub properties: Map<String, Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Object {
    /// The object as the API shows it.
    pub fn to_json(&self) -> Value {
        let mut properties = self.properties.clone();
        properties.insert("hs_object_id".into(), json!(self.id.to_string()));
        properties.insert("createdate".into(), json!(iso_ms(self.created_ms)));
        properties.insert("lastmodifieddate".into(), json!(iso_ms(self.updated_ms)));
        json!({
            "id": self.id.to_string(),
            "properties": properties,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": false,
        })
    }

    /// A property's value as text, as filters compare them (the
    /// read-only ones included).
    pub fn property(&self, name: &str) -> Option<String> {
        match name {
            "hs_object_id" => Some(self.id.to_string()),
            "createdate" => Some(self.created_ms.to_string()),
            "lastmodifieddate" => Some(self.updated_ms.to_string()),
            _ => self.properties.get(name).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }
}

/// How big a CRM to seed.
#[derive(Debug, Clone)]
pub struct Seed {
    pub seed: u64,
    pub companies: usize,
    pub contacts: usize,
    pub deals: usize,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            seed: 7,
            companies: 20,
            contacts: 100,
            deals: 40,
        }
    }
}

/// Every object, by kind and id. Ids are shared across kinds, as in
/// HubSpot, so an id names one object.
#[derive(Debug, Default)]
pub struct Data {
    pub objects: BTreeMap<Kind, BTreeMap<u64, Object>>,
    next_id: u64,
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];
const STAGES: [&str; 4] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "closedwon",
    "closedlost",
];

impl Data {
    pub fn seeded(seed: &Seed) -> Data {
        let mut rng = Lcg(seed.seed);
        let mut data = Data {
            next_id: 1001,
            ..Data::default()
        };
        // Seeded objects were last changed in the past, a minute apart, so
        // that "changed since" filters have something to tell apart.
        let base = junction_backend_kit::now_ms() - 86_400_000;
        let at = |n: usize| base + n as i64 * 60_000;
        let mut companies = Vec::new();
        for i in 0..seed.companies {
            let industry = ["RETAIL", "SOFTWARE", "LOGISTICS"][rng.below(3) as usize];
            let p = props(json!({
                "name": format!("Company {i:04}"),
                "domain": format!("company{i:04}.example"),
                "industry": industry,
                "city": "Lisbon",
                "country": "Portugal",
            }));
            companies.push(data.insert_at(Kind::Companies, p, at(i)));
        }
        let mut contacts = Vec::new();
        for i in 0..seed.contacts {
            let first = FIRST[rng.below(8) as usize];
            let last = LAST[rng.below(8) as usize];
            let mut p = props(json!({
                "email": format!("{}.{}{i}@example.com", first.to_lowercase(), last.to_lowercase()),
                "firstname": first,
                "lastname": last,
                "phone": format!("+351 21 {:03} {:04}", rng.below(1000), rng.below(10_000)),
                "lifecyclestage": "customer",
            }));
            if !companies.is_empty() {
                let c = companies[rng.below(companies.len() as u64) as usize];
                p.insert("associatedcompanyid".into(), json!(c.to_string()));
            }
            contacts.push(data.insert_at(Kind::Contacts, p, at(i)));
        }
        for i in 0..seed.deals {
            let mut p = props(json!({
                "dealname": format!("Deal {i:04}"),
                "amount": format!("{}.00", 100 + rng.below(9_900)),
                "dealstage": STAGES[rng.below(4) as usize],
                "pipeline": "default",
            }));
            if !contacts.is_empty() {
                let c = contacts[rng.below(contacts.len() as u64) as usize];
                p.insert("associatedcontactid".into(), json!(c.to_string()));
                // A deal is with its contact's company, as HubSpot
                // associates them.
                let company = data
                    .get(Kind::Contacts, c)
                    .and_then(|o| o.properties.get("associatedcompanyid").cloned());
                if let Some(company) = company {
                    p.insert("associatedcompanyid".into(), company);
                }
            }
            data.insert_at(Kind::Deals, p, at(i));
        }
        data
    }

    fn insert_at(&mut self, kind: Kind, properties: Map<String, Value>, at_ms: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.objects.entry(kind).or_default().insert(
            id,
            Object {
                id,
                properties,
                created_ms: at_ms,
                updated_ms: at_ms,
            },
        );
        id
    }

    /// A new object, created now.
    pub fn create(&mut self, kind: Kind, properties: Map<String, Value>) -> &Object {
        let id = self.insert_at(kind, properties, junction_backend_kit::now_ms());
        &self.objects[&kind][&id]
    }

    pub fn get(&self, kind: Kind, id: u64) -> Option<&Object> {
        self.objects.get(&kind)?.get(&id)
    }

    /// Change some properties (an empty string clears one); the update
    /// time moves, and never backwards.
    pub fn update(
        &mut self,
        kind: Kind,
        id: u64,
        properties: Map<String, Value>,
    ) -> Option<&Object> {
        let object = self.objects.get_mut(&kind)?.get_mut(&id)?;
        for (k, v) in properties {
            if v == json!("") || v.is_null() {
                object.properties.remove(&k);
            } else {
                object.properties.insert(k, v);
            }
        }
        object.updated_ms = junction_backend_kit::now_ms().max(object.updated_ms + 1);
        Some(object)
    }

    pub fn remove(&mut self, kind: Kind, id: u64) -> bool {
        self.objects
            .get_mut(&kind)
            .is_some_and(|m| m.remove(&id).is_some())
    }

    /// The contact with this email (case-insensitive), if any.
    pub fn contact_by_email(&self, email: &str) -> Option<&Object> {
        self.objects.get(&Kind::Contacts)?.values().find(|c| {
            c.properties
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.objects.get(&kind).into_iter().flat_map(|m| m.values())
    }
}

fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(784_111_777_123), "1994-11-06T08:49:37.123Z");
        assert_eq!(
            parse_time("1994-11-06T08:49:37.123Z"),
            Some(784_111_777_123)
        );
        assert_eq!(parse_time("1994-11-06T08:49:37Z"), Some(784_111_777_000));
        assert_eq!(parse_time("784111777123"), Some(784_111_777_123));
        assert_eq!(parse_time("1994-13-06T08:49:37Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_seed_gives_the_same_crm() {
        let a = Data::seeded(&Seed::default());
        let b = Data::seeded(&Seed::default());
        assert_eq!(a.all(Kind::Contacts).count(), 100);
        assert_eq!(a.all(Kind::Companies).count(), 20);
        assert_eq!(a.all(Kind::Deals).count(), 40);
        let (ca, cb) = (
            a.all(Kind::Contacts).nth(7).unwrap(),
            b.all(Kind::Contacts).nth(7).unwrap(),
        );
        assert_eq!(ca.properties, cb.properties);
        assert!(ca.properties.contains_key("associatedcompanyid"));
        // A deal is with its contact's company.
        for deal in a.all(Kind::Deals) {
            let contact: u64 = deal
                .property("associatedcontactid")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                deal.property("associatedcompanyid"),
                a.get(Kind::Contacts, contact)
                    .unwrap()
                    .property("associatedcompanyid")
            );
        }
    }
}
