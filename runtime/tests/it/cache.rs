//! The compiled-artifact cache: a second host with the same cache folder
//! loads without compiling; a damaged artifact is compiled again.

use junction_runtime::{Host, HostConfig};

fn host_with_cache(dir: &std::path::Path) -> Host {
    Host::new(HostConfig {
        cache_dir: Some(dir.to_path_buf()),
        max_instances: 4,
        ..HostConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_restart_loads_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path: &std::path::Path = junction_test_artifacts::MAPPER_ONLY.as_ref();
    let first = host_with_cache(dir.path()).load_file(path).await.unwrap();
    assert!(!first.compile_info().cached);
    let second = host_with_cache(dir.path()).load_file(path).await.unwrap();
    assert!(second.compile_info().cached);
    assert_eq!(first.digest(), second.digest());

    let ctx = crate::support::Ctx::default().build();
    second.describe(&ctx).await.into_result().unwrap();

    // Damage every artifact: the next load compiles again, and works.
    // The damaged file replaces the artifact rather than overwriting it in
    // place: hosts map artifacts (`second` still does), and truncating a
    // mapped file kills the process — which is why the cache itself only
    // ever renames new files into place.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let damaged = path.with_extension("damaged");
        std::fs::write(&damaged, b"garbage").unwrap();
        std::fs::rename(&damaged, &path).unwrap();
    }
    let third = host_with_cache(dir.path()).load_file(path).await.unwrap();
    assert!(!third.compile_info().cached);
    third.describe(&ctx).await.into_result().unwrap();
    assert!(
        host_with_cache(dir.path())
            .load_file(path)
            .await
            .unwrap()
            .compile_info()
            .cached
    );
}
