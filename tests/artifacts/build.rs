//! Builds every guest fixture in `tests/fixtures` for `wasm32-wasip2` and
//! writes one path constant per fixture.

#[path = "../../connectors/bundle/guests.rs"]
mod guests;

const FIXTURES: &[&str] = &["probe", "mapper-only", "broken-describe"];

fn main() {
    let packages: Vec<String> = FIXTURES.iter().map(|n| format!("fixture-{n}")).collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let files = guests::build(&packages, &["tests/fixtures"]);
    let mut consts = String::new();
    for (name, file) in FIXTURES.iter().zip(files) {
        consts.push_str(&format!(
            "/// `tests/fixtures/{name}` built for {}.\npub const {}: &str = {:?};\n",
            guests::TARGET,
            name.replace('-', "_").to_uppercase(),
            file.display().to_string()
        ));
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}
