//! The optional capabilities of contract 0.1.2 (the `full-connector`
//! world): [`Features`] declares what the connector offers — match fields
//! for adoption among them, which the host reads from mapped data itself —
//! and [`Lookup`], [`Webhooks`] and [`Tasks`] implement the rest. Every
//! method has a default that declines, so a connector writes
//! `impl Tasks for X {}` for what it does not offer; the host calls only
//! what [`Features::features`] declares.

use serde_json::Value;

use crate::Error;
use crate::bindings::exports::junction::connector::{features, lookup, tasks, webhooks};
use crate::bindings::junction::connector::types as wit;
use crate::types::{JobRequest, parse};

/// What the connector offers beyond search, read, write and listen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureSet {
    /// Models whose ids [`Lookup::list_ids`] pages (deletion
    /// reconciliation).
    pub list_ids: Vec<String>,
    /// Models [`Lookup::find`] searches by match field (an export looks
    /// there before it creates).
    pub find: Vec<String>,
    /// `(model, field)`: fields of local data that are natural keys (an
    /// email, a SKU); the host adopts the local record with an equal value
    /// (trimmed, lowercased) instead of creating another.
    pub match_keys: Vec<(String, String)>,
    /// Webhook names [`Webhooks::on_webhook`] accepts.
    pub webhooks: Vec<String>,
    /// `(name, description)` of each task [`Tasks::run`] runs.
    pub tasks: Vec<(String, String)>,
}

impl FeatureSet {
    pub fn list_ids(mut self, model: &str) -> Self {
        self.list_ids.push(model.to_string());
        self
    }
    pub fn find(mut self, model: &str) -> Self {
        self.find.push(model.to_string());
        self
    }
    pub fn match_key(mut self, model: &str, field: &str) -> Self {
        self.match_keys.push((model.to_string(), field.to_string()));
        self
    }
    pub fn webhook(mut self, name: &str) -> Self {
        self.webhooks.push(name.to_string());
        self
    }
    pub fn task(mut self, name: &str, description: &str) -> Self {
        self.tasks.push((name.to_string(), description.to_string()));
        self
    }
}

/// One page of ids; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdPage {
    pub ids: Vec<String>,
    pub next_cursor: Option<String>,
}

/// A verified webhook call.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub name: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Webhook {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_str(&self.body)
            .map_err(|e| Error::permanent(format!("the webhook body is not JSON: {e}")))
    }
}

/// Declares the optional capabilities (none by default).
pub trait Features {
    fn features() -> FeatureSet {
        FeatureSet::default()
    }
}

/// Ids-only listing and search by key.
pub trait Lookup {
    fn list_ids(model: &str, _cursor: Option<&str>, _page_size: u32) -> Result<IdPage, Error> {
        Err(Error::permanent(format!(
            "this connector does not list the ids of {model} records"
        )))
    }
    /// The ids of `model` records whose match field `field` (named as in
    /// local data) equals `value`.
    fn find(model: &str, _field: &str, _value: &str) -> Result<Vec<String>, Error> {
        Err(Error::permanent(format!(
            "this connector does not find {model} records by key"
        )))
    }
}

/// Turns a backend's webhook calls into jobs.
pub trait Webhooks {
    fn on_webhook(_backend: &str, hook: &Webhook) -> Result<Vec<JobRequest>, Error> {
        Err(Error::permanent(format!(
            "this connector takes no webhook named {}",
            hook.name
        )))
    }
}

/// Runs the connector's own job functions.
pub trait Tasks {
    fn run(name: &str, _args: &Value) -> Result<String, Error> {
        Err(Error::permanent(format!(
            "this connector has no task {name}"
        )))
    }
}

impl<T: Features> features::Guest for T {
    fn features() -> features::FeatureSet {
        let f = T::features();
        features::FeatureSet {
            list_ids: f.list_ids,
            find: f.find,
            match_keys: f
                .match_keys
                .into_iter()
                .map(|(model, field)| features::MatchField { model, field })
                .collect(),
            webhooks: f.webhooks,
            tasks: f
                .tasks
                .into_iter()
                .map(|(name, description)| features::TaskSpec { name, description })
                .collect(),
        }
    }
}

impl<T: Lookup> lookup::Guest for T {
    fn list_ids(
        model: String,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<lookup::IdPage, wit::Error> {
        let page = T::list_ids(&model, cursor.as_deref(), page_size)?;
        Ok(lookup::IdPage {
            ids: page.ids,
            next_cursor: page.next_cursor,
        })
    }

    fn find(model: String, field: String, value: String) -> Result<Vec<String>, wit::Error> {
        Ok(T::find(&model, &field, &value)?)
    }
}

impl<T: Webhooks> webhooks::Guest for T {
    fn on_webhook(
        backend: String,
        hook: webhooks::Webhook,
    ) -> Result<Vec<wit::JobRequest>, wit::Error> {
        let hook = Webhook {
            name: hook.name,
            headers: hook.headers,
            body: hook.body,
        };
        Ok(T::on_webhook(&backend, &hook)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

impl<T: Tasks> tasks::Guest for T {
    fn run(name: String, args: String) -> Result<String, wit::Error> {
        let args = parse("the task's arguments", &args)?;
        Ok(T::run(&name, &args)?)
    }
}
