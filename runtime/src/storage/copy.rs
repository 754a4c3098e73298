//! Moving an installation between databases (`junction db copy`): the
//! tables that hold what must not be lost — jobs with their dependencies,
//! logs and HTTP audit, records, bindings, the outbox, connectors with
//! their activation history, backends, stream state — described once here,
//! read page by page from the source and written into the target in one
//! transaction, so a failed copy leaves the target empty. Leases, the node
//! registry and the registry generation are per database and not copied.

use async_trait::async_trait;

use super::{Storage, StorageError};

/// A column's type, as both databases store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Text,
    Bytes,
    Bool,
}

/// One value of a copied row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// A copied table: its name, a total order of its rows, its columns.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub order: &'static str,
    pub columns: &'static [(&'static str, Col)],
}

impl Table {
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT … ORDER BY … LIMIT $1 OFFSET $2`.
    pub(crate) fn select(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
            self.column_list(),
            self.name,
            self.order
        )
    }

    /// A multi-row `INSERT` of `rows` rows.
    pub(crate) fn insert(&self, param: &'static str, rows: usize) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.name,
            self.column_list(),
            super::rows::Params::new(param).rows(rows, self.columns.len())
        )
    }
}

use Col::{Bool, Bytes, Int, Text};

/// In an order that satisfies the foreign keys.
pub const TABLES: &[Table] = &[
    Table {
        name: "connectors",
        order: "digest",
        columns: &[
            ("digest", Text),
            ("name", Text),
            ("version", Text),
            ("backend_kind", Text),
            ("backend_versions", Text),
            ("manifest", Text),
            ("component", Bytes),
            ("active", Bool),
            ("installed_at", Int),
        ],
    },
    Table {
        name: "connector_activations",
        order: "seq",
        columns: &[
            ("seq", Int),
            ("name", Text),
            ("digest", Text),
            ("at", Int),
            ("rolled_back", Bool),
        ],
    },
    Table {
        name: "backends",
        order: "name",
        columns: &[
            ("name", Text),
            ("kind", Text),
            ("version", Text),
            ("config", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "stream_state",
        order: "backend, key",
        columns: &[
            ("backend", Text),
            ("key", Text),
            ("value", Text),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "jobs",
        order: "id",
        columns: &[
            ("id", Int),
            ("function", Text),
            ("args", Text),
            ("backend", Text),
            ("state", Text),
            ("priority", Int),
            ("eta", Int),
            ("channel", Text),
            ("identity_key", Text),
            ("max_retries", Int),
            ("tries", Int),
            ("description", Text),
            ("result", Text),
            ("error_kind", Text),
            ("error_message", Text),
            ("pending_parents", Int),
            ("created_at", Int),
            ("started_at", Int),
            ("finished_at", Int),
            ("lease_until", Int),
            ("node", Text),
            ("worker", Text),
            ("connector_digest", Text),
            ("record", Text),
        ],
    },
    Table {
        name: "job_dependencies",
        order: "parent, child",
        columns: &[("parent", Int), ("child", Int)],
    },
    Table {
        name: "job_logs",
        order: "job_id, seq",
        columns: &[
            ("job_id", Int),
            ("seq", Int),
            ("try", Int),
            ("level", Text),
            ("source", Text),
            ("message", Text),
        ],
    },
    Table {
        name: "job_http_audit",
        order: "job_id, seq",
        columns: &[
            ("job_id", Int),
            ("seq", Int),
            ("try", Int),
            ("method", Text),
            ("scheme", Text),
            ("host", Text),
            ("port", Int),
            ("path", Text),
            ("status", Int),
            ("denied", Text),
            ("error", Text),
            ("request_bytes", Int),
            ("response_bytes", Int),
            ("duration_ms", Int),
        ],
    },
    Table {
        name: "records",
        order: "model, id",
        columns: &[
            ("model", Text),
            ("id", Text),
            ("data", Text),
            ("version", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "record_keys",
        order: "model, name, value, local_id",
        columns: &[
            ("model", Text),
            ("name", Text),
            ("value", Text),
            ("local_id", Text),
        ],
    },
    Table {
        name: "bindings",
        order: "backend, model, external_id",
        columns: &[
            ("backend", Text),
            ("model", Text),
            ("external_id", Text),
            ("local_id", Text),
            ("sync_date", Int),
            ("synced", Text),
        ],
    },
    Table {
        name: "outbox",
        order: "id",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("model", Text),
            ("local_id", Text),
            ("changed_fields", Text),
            ("payload", Text),
            ("origin_backend", Text),
            ("created_at", Int),
            ("processed_at", Int),
        ],
    },
    // An operator's pauses, and the notifications not sent yet, hold
    // across a move.
    Table {
        name: "paused",
        order: "kind, name",
        columns: &[("kind", Text), ("name", Text), ("paused_at", Int)],
    },
    Table {
        name: "notifications",
        order: "id",
        columns: &[
            ("id", Int),
            ("target", Text),
            ("kind", Text),
            ("backend", Text),
            ("subject", Text),
            ("message", Text),
            ("at", Int),
        ],
    },
    Table {
        name: "notification_drops",
        order: "target",
        columns: &[("target", Text), ("dropped", Int)],
    },
];

/// Writes copied rows into a database, in one transaction.
#[async_trait]
pub trait Loader: Send {
    async fn load(&mut self, table: &Table, rows: Vec<Vec<Cell>>) -> Result<(), StorageError>;
    /// Commit everything loaded (and bring id sequences past the copied
    /// ids); dropping the loader instead rolls it all back.
    async fn finish(self: Box<Self>) -> Result<(), StorageError>;
}

/// How many rows each table got.
pub type CopyReport = Vec<(&'static str, u64)>;

/// Copy every table of [`TABLES`] from `from` into `to`, which must hold
/// no jobs, records, bindings or connectors yet. `progress` hears each
/// table's running count.
pub async fn copy(
    from: &dyn Storage,
    to: &dyn Storage,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<CopyReport, StorageError> {
    for table in ["jobs", "records", "bindings", "connectors"] {
        let t = TABLES
            .iter()
            .find(|t| t.name == table)
            .expect("a copied table");
        if !to.dump(t, 0, 1).await?.is_empty() {
            return Err(StorageError::Rejected(format!(
                "the target database already has {table}; copy into an empty database (a new database or database_schema)"
            )));
        }
    }
    let mut loader = to.loader().await?;
    let mut report = Vec::new();
    const PAGE: u32 = 1_000;
    for table in TABLES {
        let mut copied = 0u64;
        loop {
            let rows = from.dump(table, copied as i64, PAGE).await?;
            let n = rows.len() as u64;
            if n == 0 {
                break;
            }
            loader.load(table, rows).await?;
            copied += n;
            progress(table.name, copied);
            if n < u64::from(PAGE) {
                break;
            }
        }
        report.push((table.name, copied));
    }
    loader.finish().await?;
    Ok(report)
}

/// A row's cells, decoded by the table's column types.
pub(crate) fn cells<R: sqlx::Row>(row: &R, table: &Table) -> Result<Vec<Cell>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, col))| {
            Ok(match col {
                Col::Int => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Cell::Null, Cell::Int),
                Col::Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Cell::Null, Cell::Text),
                Col::Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Cell::Null, Cell::Bytes),
                Col::Bool => row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Cell::Null, Cell::Bool),
            })
        })
        .collect()
}

/// Rows per `INSERT`, under both databases' limits on parameters.
pub(crate) fn rows_per_insert(table: &Table) -> usize {
    (30_000 / table.columns.len()).max(1)
}
