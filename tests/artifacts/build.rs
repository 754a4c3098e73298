//! Builds every guest fixture in `tests/fixtures` for `wasm32-wasip2`, and
//! the Python and JavaScript connectors with their pinned toolchains, and
//! writes one path constant per component.

#[path = "../../connectors/bundle/guests.rs"]
mod guests;
mod polyglot;

use std::path::{Path, PathBuf};

const FIXTURES: &[&str] = &[
    "probe",
    "probe-greedy",
    "probe-next",
    "probe-plus",
    "mapper-only",
    "broken-describe",
    "crm-mapper",
    "old-contract",
];

fn constant(consts: &mut String, doc: &str, name: &str, path: &Path) {
    consts.push_str(&format!(
        "/// {doc}\npub const {name}: &str = {:?};\n",
        path.display().to_string()
    ));
}

fn main() {
    let packages: Vec<String> = FIXTURES.iter().map(|n| format!("fixture-{n}")).collect();
    let mut packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    // The Rust companies-and-deals connector, for the imports benchmark.
    packages.push("junction-connector-crm-deals");
    let mut files = guests::build(&packages, &["tests/fixtures", "connectors/crm-deals-rust"]);
    let crm_deals_rust = files.pop().unwrap();
    let mut consts = String::new();
    for (name, file) in FIXTURES.iter().zip(files) {
        constant(
            &mut consts,
            &format!("`tests/fixtures/{name}` built for {}.", guests::TARGET),
            &name.replace('-', "_").to_uppercase(),
            &file,
        );
    }

    let root = guests::workspace_root();
    for dir in [
        "guest-sdk/python",
        "guest-sdk/js",
        "connectors/crm-python",
        "connectors/crm-deals-python",
        "connectors/crm-js",
        "connectors/crm-deals-js",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=JUNCTION_PYTHON");
    for file in ["backends/tryton/tryton.lock", "backends/tryton/setup.py"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let poly = polyglot::Polyglot::new(
        &root,
        guests::guest_target_dir(&out_dir, &root).join("polyglot"),
    );
    let wit = poly.wit();
    // Python and JavaScript build side by side: each takes seconds.
    let (
        (python, crm_python, crm_deals),
        (node_tools, crm_js_mapper, crm_js, crm_deals_js),
        tryton,
    ) = std::thread::scope(|s| {
        // Tryton installs and creates its template database meanwhile.
        let erp = s.spawn(|| {
            let dir = poly.dir.join("tryton");
            junction_tryton::install(&dir)
                .unwrap_or_else(|e| panic!("installing Tryton for the tests: {e}"));
            dir
        });
        let py = s.spawn(|| {
            let python = poly.python();
            let component = poly.python_component(
                &python,
                "crm-python",
                &wit,
                // Adoption, find, list-ids and webhooks: the 0.1.2 world.
                "full-connector-http",
                &["guest-sdk/python", "connectors/crm-python"],
                "app",
            );
            let deals = poly.python_component(
                &python,
                "crm-deals-python",
                &wit,
                "connector-http",
                &["guest-sdk/python", "connectors/crm-deals-python"],
                "app",
            );
            (python, component, deals)
        });
        let js = s.spawn(|| {
            let tools = poly.node_tools();
            let paths = ["guest-sdk/js/src", "guest-sdk/js/bin", "connectors/crm-js"];
            let deals_paths = [
                "guest-sdk/js/src",
                "guest-sdk/js/bin",
                "connectors/crm-deals-js",
            ];
            let mapper = poly.js_component(
                &tools,
                "crm-js-mapper",
                "connectors/crm-js/mapper.js",
                &wit,
                "mapper-unit",
                &[],
                &paths,
            );
            // The adapter keeps OAuth2 tokens until they expire: it reads
            // the clock.
            let connector = poly.js_component(
                &tools,
                "crm-js",
                "connectors/crm-js/connector.js",
                &wit,
                "full-connector-http",
                &["clocks"],
                &paths,
            );
            let deals = poly.js_component(
                &tools,
                "crm-deals-js",
                "connectors/crm-deals-js/connector.js",
                &wit,
                "connector-http",
                &["clocks"],
                &deals_paths,
            );
            (tools, mapper, connector, deals)
        });
        (py.join().unwrap(), js.join().unwrap(), erp.join().unwrap())
    });
    constant(
        &mut consts,
        "`connectors/crm-python` built with componentize-py (adapter, mapper, listener, and the optional features, lookup and webhooks).",
        "CRM_PYTHON",
        &crm_python,
    );
    constant(
        &mut consts,
        "`connectors/crm-deals-python` built with componentize-py (companies and deals only).",
        "CRM_DEALS_PYTHON",
        &crm_deals,
    );
    constant(
        &mut consts,
        "`connectors/crm-js`'s mapper alone, built with componentize-js (a mapper unit for CRM 3.1+).",
        "CRM_JS_MAPPER",
        &crm_js_mapper,
    );
    constant(
        &mut consts,
        "`connectors/crm-js` whole, built with componentize-js (adapter, mapper, listener, and the optional features, lookup and webhooks).",
        "CRM_JS",
        &crm_js,
    );
    constant(
        &mut consts,
        "`connectors/crm-deals-js` built with componentize-js (companies and deals only).",
        "CRM_DEALS_JS",
        &crm_deals_js,
    );
    constant(
        &mut consts,
        "`connectors/crm-deals-rust` built for wasm32-wasip2 (companies and deals only).",
        "CRM_DEALS_RUST",
        &crm_deals_rust,
    );
    constant(
        &mut consts,
        "The build's Python, with the pinned componentize-py and pytest.",
        "PYTHON",
        &python,
    );
    constant(
        &mut consts,
        "The folder whose `node_modules` has the pinned componentize-js and jco.",
        "NODE_TOOLS",
        &node_tools,
    );
    constant(
        &mut consts,
        "Where the build installed Tryton 8.2 (`junction_tryton::install` of this folder is then instant): a virtualenv from `backends/tryton/tryton.lock` and the template database.",
        "TRYTON_DIR",
        &tryton,
    );
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}
