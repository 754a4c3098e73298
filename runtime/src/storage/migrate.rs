//! Embedded schema migrations, applied on open in one transaction: a
//! database is either fully at the new version or untouched.

/// One migration: a version, a name, and its SQL.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "sync",
        sql: include_str!("../../migrations/sqlite/0002_sync.sql"),
    },
    Migration {
        version: 3,
        name: "operate",
        sql: include_str!("../../migrations/sqlite/0003_operate.sql"),
    },
    Migration {
        version: 4,
        name: "nodes",
        sql: include_str!("../../migrations/sqlite/0004_nodes.sql"),
    },
    Migration {
        version: 5,
        name: "backend_quotas",
        sql: include_str!("../../migrations/sqlite/0005_backend_quotas.sql"),
    },
    Migration {
        version: 6,
        name: "job_counts",
        sql: include_str!("../../migrations/sqlite/0006_job_counts.sql"),
    },
    Migration {
        version: 7,
        name: "backend_breakers",
        sql: include_str!("../../migrations/sqlite/0007_backend_breakers.sql"),
    },
    Migration {
        version: 8,
        name: "paused",
        sql: include_str!("../../migrations/sqlite/0008_paused.sql"),
    },
    Migration {
        version: 9,
        name: "operator_views",
        sql: include_str!("../../migrations/sqlite/0009_operator_views.sql"),
    },
    Migration {
        version: 10,
        name: "record_keys",
        sql: include_str!("../../migrations/sqlite/0010_record_keys.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "sync",
        sql: include_str!("../../migrations/postgres/0002_sync.sql"),
    },
    Migration {
        version: 3,
        name: "operate",
        sql: include_str!("../../migrations/postgres/0003_operate.sql"),
    },
    Migration {
        version: 4,
        name: "nodes",
        sql: include_str!("../../migrations/postgres/0004_nodes.sql"),
    },
    Migration {
        version: 5,
        name: "lighter_completion",
        sql: include_str!("../../migrations/postgres/0005_lighter_completion.sql"),
    },
    Migration {
        version: 6,
        name: "backend_quotas",
        sql: include_str!("../../migrations/postgres/0006_backend_quotas.sql"),
    },
    Migration {
        version: 7,
        name: "job_counts",
        sql: include_str!("../../migrations/postgres/0007_job_counts.sql"),
    },
    Migration {
        version: 8,
        name: "backend_breakers",
        sql: include_str!("../../migrations/postgres/0008_backend_breakers.sql"),
    },
    Migration {
        version: 9,
        name: "paused",
        sql: include_str!("../../migrations/postgres/0009_paused.sql"),
    },
    Migration {
        version: 10,
        name: "operator_views",
        sql: include_str!("../../migrations/postgres/0010_operator_views.sql"),
    },
    Migration {
        version: 11,
        name: "record_keys",
        sql: include_str!("../../migrations/postgres/0011_record_keys.sql"),
    },
];

pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}
