//! The node registry.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::{job, start_all, storages};
use junction_runtime::storage::NodeInfo;

#[tokio::test]
async fn the_node_registry_keeps_beats_stops_and_held_jobs() {
    for (name, s, _dir) in storages().await {
        let node = |beat: i64| NodeInfo {
            name: "node-a".into(),
            version: "0.1.0".into(),
            host: "host-1".into(),
            started_at: 10,
            heartbeat_at: beat,
            stopped_at: None,
            running: 0,
        };
        s.node_beat(&node(10)).await.unwrap();
        s.node_beat(&node(20)).await.unwrap();
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        assert_eq!(start_all(s.as_ref(), 2).await, vec![id], "{name}");
        let nodes = s.nodes().await.unwrap();
        assert_eq!(
            nodes,
            vec![NodeInfo {
                running: 1,
                ..node(20)
            }],
            "{name}"
        );
        s.node_stopped("node-a", 30).await.unwrap();
        assert_eq!(s.nodes().await.unwrap()[0].stopped_at, Some(30), "{name}");
        s.node_beat(&node(40)).await.unwrap();
        assert_eq!(
            s.nodes().await.unwrap()[0].stopped_at,
            None,
            "{name}: restarted"
        );
    }
}
