//! Builds the connectors in `connectors/` for `wasm32-wasip2`; the crate
//! embeds them so that `junction demo` needs nothing on disk.

mod guests;

const CONNECTORS: &[(&str, &str)] = &[
    ("MAGENTO", "junction-connector-magento"),
    ("MAGENTO_LEGACY", "junction-connector-magento-legacy"),
    ("TRYTON", "junction-connector-tryton"),
];

fn main() {
    let packages: Vec<&str> = CONNECTORS.iter().map(|(_, p)| *p).collect();
    let files = guests::build(
        &packages,
        &[
            "connectors/magento",
            "connectors/magento-legacy",
            "connectors/tryton",
        ],
    );
    let mut consts = String::new();
    for ((name, package), file) in CONNECTORS.iter().zip(files) {
        consts.push_str(&format!(
            "/// `{package}` built for {}.\npub const {name}: &[u8] = include_bytes!({:?});\n\
             /// Where the build left it.\npub const {name}_PATH: &str = {:?};\n",
            guests::TARGET,
            file.display().to_string(),
            file.display().to_string()
        ));
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("connectors.rs"), consts).unwrap();
}
