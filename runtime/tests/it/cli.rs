//! The `junction` binary as an operator uses it: `serve` from a config
//! file, the CLI against it (install, backend check, sync with progress,
//! jobs, records), reload by command and by SIGHUP, a clean stop, an
//! invalid config refused with the key named, and a CLI with no server
//! telling how to start one.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use junction_demo_shop::Shop;
use serde_json::Value;

use super::sync::cache_dir;

pub(crate) const TOKEN: &str = "cli-test-token-0123456789";

pub(crate) fn junction() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_junction"));
    c.env("JUNCTION_CACHE_DIR", cache_dir())
        .env_remove("JUNCTION_SERVER")
        .env_remove("JUNCTION_TOKEN")
        .env_remove("JUNCTION_CONFIG");
    c
}

pub(crate) fn run(config: &Path, args: &[&str]) -> Output {
    junction()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(
        out.status.success(),
        "junction {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(config, &all)).unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Server(pub(crate) Child);

impl Server {
    /// Stop it with SIGTERM, as an operator would, and wait for it to exit:
    /// its exit status and stderr.
    pub(crate) async fn stop(mut self) -> Output {
        signal(&self.0, "TERM");
        tokio::task::spawn_blocking(move || {
            // Taken out so that `Drop` has nothing left to kill.
            let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `junction serve` from `config`, once it answers the CLI (its stderr is
/// kept for the test to read).
pub(crate) async fn serve(config: &Path) -> Server {
    let server = Server(
        junction()
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let c = config.to_path_buf();
    tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if run(&c, &["jobs", "list"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not answer");
    })
    .await
    .unwrap();
    server
}

/// Send signal `name` (`TERM`, `HUP`, …) to a child process.
pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) fn config_text(port: u16, shop: &Shop, channels: &str) -> String {
    format!(
        "data_dir = \"data\"\nwatch_dir = \"drop\"\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"{TOKEN}\"\nworkers = 4\nchannels = \"{channels}\"\n\n\
         [[backends]]\n{}",
        backend_text("shop", shop)
    )
}

/// The status of an unsigned `POST /hooks/shop/changes` to the server on
/// `port` (blocking: the operator loop runs on a blocking thread).
fn post_hook(port: u16) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = "POST /hooks/shop/changes HTTP/1.1\r\nHost: junction\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One backend entry (the keys of a `[[backends]]` table) for `shop`.
fn backend_text(name: &str, shop: &Shop) -> String {
    format!(
        "name = \"{name}\"\nkind = \"magento\"\nversion = \"2.4.6\"\nbase_url = \"{}\"\n\
         allow_internal = [\"{}\"]\nauth = {{ type = \"bearer\", token = \"{}\" }}\n",
        shop.base_url(),
        shop.addr,
        shop.issue_token()
    )
}

#[test]
fn without_a_server_the_cli_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = junction()
        .current_dir(dir.path())
        .args([
            "--server",
            &format!("127.0.0.1:{}", free_port()),
            "--token",
            TOKEN,
        ])
        .args(["jobs", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Junction server answers"), "{err}");
    assert!(
        err.contains("junction serve --config junction.toml"),
        "{err}"
    );
    // No token anywhere: said so, with where to put it.
    let out = junction()
        .current_dir(dir.path())
        .args(["jobs", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no admin token"), "{err}");
}

#[test]
fn openapi_prints_the_document_the_server_serves() {
    // No server and no config needed: the document is generated.
    let out = junction().arg("openapi").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let served: Value = serde_json::from_str(junction_runtime::api::openapi_json()).unwrap();
    assert_eq!(printed, served);
    assert!(printed["paths"]["/api/v1/jobs/bulk"]["post"]["requestBody"].is_object());
}

#[test]
fn an_invalid_config_names_the_key_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("junction.toml");
    std::fs::write(&config, format!("admin_token = \"{TOKEN}\"\nworkers = 0\n")).unwrap();
    let out = run(&config, &["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workers is invalid: must be at least 1"),
        "{err}"
    );
    assert!(
        !dir.path().join("junction-data").exists(),
        "nothing created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_operate_it_from_the_cli() {
    let shop = super::sync::small_shop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("junction.toml");
    let port = free_port();
    std::fs::write(&config, config_text(port, &shop, "root:4")).unwrap();
    let server = serve(&config).await;

    let config2 = config.clone();
    let shop2 = backend_text("shop2", &shop);
    tokio::task::spawn_blocking(move || {
        let config = config2.as_path();
        // The backend came from the file, waiting for its connector.
        // `junction backend list | head`: a reader gone before the output
        // ends the command quietly, not with a panic.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let piped = junction()
            .arg("--config")
            .arg(config)
            .args(["backend", "list"])
            .stdout(writer)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&piped.stderr);
        assert!(
            piped.status.success() && !said.contains("panicked"),
            "{:?}: {said}",
            piped.status
        );
        let backends = json(config, &["backend", "list"]);
        assert!(
            backends["items"][0]["units"]["error"]
                .as_str()
                .unwrap()
                .contains("no installed adapter"),
            "{backends}"
        );
        let sha = junction_connectors::MAGENTO_PATH;
        let installed = ok(config, &["connector", "install", sha]);
        assert!(installed.contains("installed magento 0.1.0"), "{installed}");
        let checked = ok(config, &["backend", "check", "shop"]);
        assert!(checked.contains("backend shop ok"), "{checked}");
        let paused = ok(config, &["backend", "pause", "shop"]);
        assert!(
            paused.contains("backend shop paused on every node"),
            "{paused}"
        );
        let listed = ok(config, &["backend", "list"]);
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("shop") && l.trim_end().ends_with("paused")),
            "{listed}"
        );
        let resumed = ok(config, &["backend", "resume", "shop"]);
        assert!(resumed.contains("backend shop resumed"), "{resumed}");
        let again = ok(config, &["channel", "resume", "root.shop"]);
        assert!(
            again.contains("channel root.shop was not paused"),
            "{again}"
        );
        let refused = run(config, &["channel", "pause", "shop"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("start with `root`"),
            "{refused:?}"
        );
        let nodes = ok(config, &["nodes"]);
        assert!(
            nodes.lines().nth(1).is_some_and(|l| l.contains("alive")),
            "{nodes}"
        );
        let list = ok(config, &["connector", "list"]);
        assert!(
            list.lines()
                .any(|l| l.starts_with('*') && l.contains("magento")),
            "{list}"
        );

        let synced = ok(config, &["sync", "import", "shop", "--direct"]);
        for model in ["category", "product", "customer", "order"] {
            assert!(synced.contains(&format!("{model}: done")), "{synced}");
        }
        let jobs = json(
            config,
            &["jobs", "list", "--state", "done", "--backend", "shop"],
        );
        assert_eq!(jobs["items"].as_array().unwrap().len(), 4, "{jobs}");
        let reconciled = ok(config, &["sync", "reconcile", "shop", "product"]);
        assert!(
            reconciled.contains("product: done") && reconciled.contains("0 no longer there"),
            "{reconciled}"
        );
        let id = jobs["items"][0]["id"].to_string();
        let shown = ok(config, &["jobs", "show", &id]);
        assert!(
            shown.contains("outbound HTTP:") && shown.contains("→ 200"),
            "{shown}"
        );
        let records = json(config, &["records", "list", "order", "--limit", "3"]);
        let local = records["items"][0]["id"].as_str().unwrap().to_string();
        let one = ok(config, &["records", "get", "order", &local]);
        assert!(one.contains("\"lines\""), "{one}");
        let bindings = ok(
            config,
            &[
                "bindings",
                "list",
                "--backend",
                "shop",
                "--model",
                "customer",
            ],
        );
        assert_eq!(bindings.lines().count(), 1 + 12, "{bindings}");
        // Repair commands: cursors, bulk actions (counted first), dead
        // events, a breaker closed by hand.
        let cursors = ok(config, &["backend", "cursors", "shop"]);
        assert!(
            cursors.starts_with("MODEL") && cursors.contains("\nproduct "),
            "{cursors}"
        );
        let reset = ok(config, &["backend", "reset-cursor", "shop", "product"]);
        assert!(reset.contains("product cursor reset"), "{reset}");
        let refused = run(config, &["jobs", "bulk", "requeue"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("needs a filter: --state"),
            "{refused:?}"
        );
        let counted = ok(
            config,
            &[
                "jobs",
                "bulk",
                "cancel",
                "--state",
                "done",
                "--backend",
                "shop",
            ],
        );
        assert!(
            // The four imports and the reconciliation.
            counted.contains("5 jobs match; nothing changed yet")
                && counted.contains("junction jobs bulk cancel --state done --backend shop --yes"),
            "{counted}"
        );
        let acted = ok(
            config,
            &[
                "jobs",
                "bulk",
                "cancel",
                "--state",
                "done",
                "--backend",
                "shop",
                "--yes",
            ],
        );
        assert!(acted.contains("0 changed, 5 skipped"), "{acted}");
        let later = ok(config, &["jobs", "list", "--since", "2999-01-01T00:00:00Z"]);
        assert_eq!(later.lines().count(), 1, "nothing enqueued then: {later}");
        let dead = ok(config, &["events", "dead"]);
        assert_eq!(dead.lines().count(), 1, "only the header: {dead}");
        let closed = ok(config, &["backend", "close-breaker", "shop"]);
        assert!(closed.contains("was not open"), "{closed}");
        let refused = run(config, &["jobs", "requeue", &id]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("is done"));

        // A backend added from a file imports one job per record; the
        // command returns only once those jobs have finished.
        let added = config.with_file_name("shop2.toml");
        std::fs::write(&added, shop2).unwrap();
        ok(config, &["backend", "add", added.to_str().unwrap()]);
        let imported = ok(config, &["sync", "import", "shop2", "--model", "customer"]);
        assert!(
            imported.contains("every record import job finished done"),
            "{imported}"
        );
        for state in ["pending", "enqueued", "started"] {
            let left = json(
                config,
                &["jobs", "list", "--backend", "shop2", "--state", state],
            );
            assert_eq!(left["items"], serde_json::json!([]), "{state}: {left}");
        }
        let records = json(
            config,
            &[
                "jobs",
                "list",
                "--backend",
                "shop2",
                "--function",
                "junction.import-record",
                "--state",
                "done",
            ],
        );
        assert_eq!(records["items"].as_array().unwrap().len(), 12, "{records}");

        // Removal: the file's backend is refused (a reload would bring it
        // back); the added one goes, with its bindings when purged.
        let refused = run(config, &["backend", "remove", "shop"]);
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains("declared in") && said.contains("junction.toml"),
            "{said}"
        );
        let removed = ok(config, &["backend", "remove", "shop2", "--purge"]);
        assert!(
            removed.contains("backend shop2 removed") && removed.contains("12 bindings"),
            "{removed}"
        );
        let backends = json(config, &["backend", "list"]);
        assert_eq!(backends["items"].as_array().unwrap().len(), 1, "{backends}");
    })
    .await
    .unwrap();

    // A component dropped into the watched folder becomes the active version.
    let next = super::api::rebuilt(junction_connectors::MAGENTO, "dropped");
    std::fs::create_dir_all(dir.path().join("drop")).unwrap();
    std::fs::write(dir.path().join("drop/magento-next.wasm"), &next).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = json(&config, &["connector", "list"]);
        let active = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["active"] == true && c["digest"] == super::api::digest(&next).as_str());
        if active {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped component was not installed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Reload by command: a schedule, new channels and webhook intake, no
    // restart.
    assert_eq!(post_hook(port), 404, "webhook intake starts off");
    let mut text = config_text(port, &shop, "root:2, root.shop:1");
    text.push_str("schedules = [{ model = \"category\", every = 1000 }]\n");
    text.push_str("webhooks = { secret = \"hook-secret\" }\n\n[webhooks]\nenabled = true\n");
    std::fs::write(&config, text).unwrap();
    let reloaded = ok(&config, &["reload"]);
    assert!(
        reloaded.contains("channels reloaded")
            && reloaded.contains("backend shop ready")
            && reloaded.contains("webhook intake on"),
        "{reloaded}"
    );
    assert_eq!(
        post_hook(port),
        401,
        "on after the reload: an unsigned call is refused for its signature"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batches = json(
            &config,
            &["jobs", "list", "--function", "junction.import-batch"],
        );
        if batches["items"].as_array().unwrap().len() > 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reloaded schedule never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file is refused on reload; the running config stays.
    std::fs::write(&config, "workers = \"many\"\n").unwrap();
    let out = run(
        &config,
        &[
            "--server",
            &format!("127.0.0.1:{port}"),
            "--token",
            TOKEN,
            "reload",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the running configuration is unchanged")
    );
    // By SIGHUP, rotating the admin token: the old one stops working.
    std::fs::write(
        &config,
        config_text(port, &shop, "root:4").replace(TOKEN, "rotated-token-0123456789"),
    )
    .unwrap();
    signal(&server.0, "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !run(&config, &["jobs", "list"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new token never worked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = run(&config, &["--token", TOKEN, "jobs", "list"]);
    assert!(!old.status.success());
    assert!(String::from_utf8_lossy(&old.stderr).contains("not the admin token"));
    // Then a clean stop on SIGTERM.
    let out = server.stop().await;
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config reloaded: "), "{err}");
    assert!(err.contains("admin token rotated"), "{err}");
    assert!(
        err.contains("magento-next.wasm: installed and activated magento"),
        "{err}"
    );
    assert!(err.contains("stopped:"), "{err}");
}
