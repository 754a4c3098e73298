//! `junction connector new` in each language, as an author would use it:
//! make the skeleton, run its own tests and build it with the commands its
//! README gives, then install the component on a node and import the
//! reference CRM's companies with it — first all of them, then the one
//! changed since.

use std::path::{Path, PathBuf};
use std::process::Command;

use junction_demo_crm::{Crm, CrmConfig, Kind, Seed};
use junction_runtime::sync::batch::batch_job;
use serde_json::json;

use crate::polyglot::{crm_backend, passes, root, run_clean};
use crate::sync::fresh_node;

/// `junction connector new NAME --lang LANG --dir DIR`: the skeleton's folder.
fn new_connector(name: &str, lang: &str, dir: &Path) -> PathBuf {
    passes(
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["connector", "new", name, "--lang", lang, "--dir"])
            .arg(dir),
        &format!("junction connector new {name} --lang {lang}"),
    );
    let out = dir.join(name);
    for file in ["README.md", "build.sh", ".gitignore"] {
        assert!(out.join(file).is_file(), "the skeleton has no {file}");
    }
    out
}

/// Install `wasm` on a fresh node beside a CRM, import its companies,
/// change one in the CRM and import again.
async fn imports_the_crms_companies(wasm: &Path, name: &str) {
    let (_dir, storage, node) = fresh_node().await;
    let crm = Crm::start(
        CrmConfig {
            seed: Seed {
                seed: 13,
                companies: 7,
                contacts: 0,
                deals: 0,
            },
            ..CrmConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let installed = node
        .sync
        .install(&std::fs::read(wasm).unwrap())
        .await
        .unwrap();
    assert_eq!(installed.name, name);
    node.sync
        .configure(&crm_backend(&crm, "3.0.0"))
        .await
        .unwrap();
    let import = || async {
        run_clean(
            &node,
            &*storage,
            &[batch_job("crm", "company", false)],
            name,
        )
        .await;
    };
    import().await;
    let companies = crm.objects(Kind::Companies);
    let names_of = |records: Vec<junction_runtime::model::LocalRecord>| -> Vec<String> {
        records
            .iter()
            .map(|r| {
                let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
                data["name"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    let mut names = names_of(storage.records("company", None, 100).await.unwrap());
    let mut want: Vec<String> = companies
        .iter()
        .map(|c| {
            c["properties"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    // A change in the CRM arrives with the next (incremental) import.
    let id = companies[0]["id"].as_str().unwrap().to_string();
    assert!(crm.edit(Kind::Companies, &id, json!({"name": "Renamed by the CRM"})));
    import().await;
    let names = names_of(storage.records("company", None, 100).await.unwrap());
    assert_eq!(names.len(), companies.len());
    assert!(
        names.iter().any(|n| n == "Renamed by the CRM"),
        "the change was not imported: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_python_connector_tests_builds_and_imports_from_the_crm() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_connector("acme-py", "python", dir.path());
    // What `pip install "<sdk>/guest-sdk/python[build,test]"` gives: the
    // SDK importable, and its `junction-componentize` console script on
    // PATH (here a shim running the same entry point with the build's
    // Python, which has the pinned componentize-py and pytest).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let shim = bin.join("junction-componentize");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nexec {} -m junction_guest.build \"$@\"\n",
            junction_test_artifacts::PYTHON
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sdk = root().join("guest-sdk/python");
    passes(
        Command::new(junction_test_artifacts::PYTHON)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(&out)
            .env("PYTHONPATH", &sdk)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "pytest in the Python skeleton",
    );
    passes(
        Command::new(out.join("build.sh"))
            .env("PATH", &path)
            .env("PYTHONPATH", &sdk)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("JUNCTION", env!("CARGO_BIN_EXE_junction")),
        "build.sh of the Python skeleton",
    );
    imports_the_crms_companies(&out.join("acme-py.wasm"), "acme-py").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_js_connector_tests_builds_and_imports_from_the_crm() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_connector("acme-js", "js", dir.path());
    // `npm install`: the SDK copied in, componentize-js from npm (or its
    // cache, which the build's own install filled).
    passes(
        Command::new("npm")
            .args(["install", "--prefer-offline", "--no-audit", "--no-fund"])
            .current_dir(&out),
        "npm install in the JavaScript skeleton",
    );
    passes(
        Command::new("npm").args(["test"]).current_dir(&out),
        "npm test in the JavaScript skeleton",
    );
    // A component `junction connector inspect` refuses is not left behind.
    let refused = Command::new("npm")
        .args(["run", "build"])
        .current_dir(&out)
        .env("JUNCTION", "false")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("fails `junction connector inspect`"),
        "{said}"
    );
    assert!(!out.join("acme-js.wasm").exists());
    passes(
        Command::new("npm")
            .args(["run", "build"])
            .current_dir(&out)
            .env("JUNCTION", env!("CARGO_BIN_EXE_junction")),
        "npm run build in the JavaScript skeleton",
    );
    imports_the_crms_companies(&out.join("acme-js.wasm"), "acme-js").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_rust_connector_tests_builds_and_imports_from_the_crm() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_connector("acme-rs", "rust", dir.path());
    // A target folder kept between runs, so only the skeleton recompiles.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skeleton-target");
    let cargo = |cmd: &mut Command| {
        // The test's own cargo settings are not the skeleton's.
        for var in [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
        ] {
            cmd.env_remove(var);
        }
        cmd.current_dir(&out).env("CARGO_TARGET_DIR", &target);
    };
    let mut test = Command::new("cargo");
    test.arg("test");
    cargo(&mut test);
    passes(&mut test, "cargo test in the Rust skeleton");
    let mut build = Command::new(out.join("build.sh"));
    build.env("JUNCTION", env!("CARGO_BIN_EXE_junction"));
    cargo(&mut build);
    passes(&mut build, "build.sh of the Rust skeleton");
    imports_the_crms_companies(
        &target.join("wasm32-wasip2/release/acme_rs.wasm"),
        "acme-rs",
    )
    .await;
}

#[test]
fn connector_new_refuses_a_bad_name_and_an_occupied_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["connector", "new", name, "--lang", "python", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let bad = run("Acme_CRM");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && said.contains("not a usable connector name"),
        "{said}"
    );
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/mine.txt"), "keep").unwrap();
    let taken = run("taken");
    let said = String::from_utf8_lossy(&taken.stderr);
    assert!(
        !taken.status.success() && said.contains("exists and is not empty"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/mine.txt")).unwrap(),
        "keep"
    );
    // Nothing else was left in the folder.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["taken"]);
}
