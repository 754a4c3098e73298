//! Conversions between the generated binding types and the host's plain
//! types in `crate::model` and `crate::error`.

use super::bindings::types as wit;
use crate::error::GuestError;
use crate::model;

/// Longest guest error message kept: it is stored with the job and shown
/// to operators, so a guest cannot make it megabytes.
pub const MAX_ERROR_MESSAGE: usize = 4096;

impl From<wit::Error> for GuestError {
    fn from(e: wit::Error) -> Self {
        let cap = |m: String| crate::text::truncate(&m, MAX_ERROR_MESSAGE);
        match e {
            wit::Error::Retryable(d) => GuestError::Retryable {
                after_seconds: d.seconds,
                message: cap(d.message),
            },
            wit::Error::RateLimited(d) => GuestError::RateLimited {
                reset_seconds: d.seconds,
                message: cap(d.message),
            },
            wit::Error::Permanent(message) => GuestError::Permanent {
                message: cap(message),
            },
            wit::Error::NotFound(message) => GuestError::NotFound {
                message: cap(message),
            },
            wit::Error::Config(message) => GuestError::Config {
                message: cap(message),
            },
            wit::Error::NothingToDo(message) => GuestError::NothingToDo {
                message: cap(message),
            },
        }
    }
}

impl From<wit::RemoteRecord> for model::RemoteRecord {
    fn from(r: wit::RemoteRecord) -> Self {
        model::RemoteRecord {
            external_id: r.external_id,
            updated_at: r.updated_at,
            data: r.data,
        }
    }
}

impl From<&model::RemoteRecord> for wit::RemoteRecord {
    fn from(r: &model::RemoteRecord) -> Self {
        wit::RemoteRecord {
            external_id: r.external_id.clone(),
            updated_at: r.updated_at.clone(),
            data: r.data.clone(),
        }
    }
}

impl From<wit::Page> for model::Page {
    fn from(p: wit::Page) -> Self {
        model::Page {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

impl From<model::LocalRecord> for wit::LocalRecord {
    fn from(r: model::LocalRecord) -> Self {
        wit::LocalRecord {
            model: r.model,
            id: r.id,
            data: r.data,
            version: r.version,
            updated_at: r.updated_at,
        }
    }
}

impl From<wit::Dependency> for model::Dependency {
    fn from(d: wit::Dependency) -> Self {
        model::Dependency {
            model: d.model,
            external_id: d.external_id,
        }
    }
}

impl From<wit::LocalDependency> for model::LocalDependency {
    fn from(d: wit::LocalDependency) -> Self {
        model::LocalDependency {
            model: d.model,
            local_id: d.local_id,
        }
    }
}

impl From<&model::Event> for wit::Event {
    fn from(e: &model::Event) -> Self {
        wit::Event {
            name: e.name.clone(),
            model: e.model.clone(),
            local_id: e.local_id.clone(),
            changed_fields: e.changed_fields.clone(),
            payload: e.payload.clone(),
            origin_backend: e.origin_backend.clone(),
        }
    }
}

impl From<wit::JobRequest> for model::JobRequest {
    fn from(r: wit::JobRequest) -> Self {
        model::JobRequest {
            function: r.function,
            args: r.args,
            priority: r.priority,
            eta: r.eta,
            channel: r.channel,
            identity_key: r.identity_key,
            max_retries: r.max_retries,
            description: r.description,
        }
    }
}

impl From<wit::Manifest> for model::Manifest {
    fn from(m: wit::Manifest) -> Self {
        use wit::Operations as O;
        let names = [
            (O::SEARCH, "search"),
            (O::READ, "read"),
            (O::CREATE, "create"),
            (O::WRITE, "write"),
            (O::DELETE, "delete"),
            (O::IMPORT, "import"),
            (O::EXPORT, "export"),
        ];
        model::Manifest {
            name: m.name,
            version: m.version,
            backend_kind: m.backend_kind,
            backend_versions: m.backend_versions,
            models: m
                .models
                .into_iter()
                .map(|s| model::ModelSupport {
                    name: s.name,
                    operations: names
                        .iter()
                        .filter(|(flag, _)| s.operations.contains(*flag))
                        .map(|(_, n)| n.to_string())
                        .collect(),
                })
                .collect(),
            events: m.events,
            hosts: m.hosts,
            settings_schema: m.settings_schema,
            secrets: m.secrets,
        }
    }
}

impl From<super::bindings::features::FeatureSet> for crate::features::Features {
    fn from(f: super::bindings::features::FeatureSet) -> Self {
        crate::features::Features {
            list_ids: f.list_ids,
            find: f.find,
            match_keys: f
                .match_keys
                .into_iter()
                .map(|m| crate::features::MatchField {
                    model: m.model,
                    field: m.field,
                })
                .collect(),
            webhooks: f.webhooks,
            tasks: f
                .tasks
                .into_iter()
                .map(|t| crate::features::TaskSpec {
                    name: t.name,
                    description: t.description,
                })
                .collect(),
        }
    }
}
