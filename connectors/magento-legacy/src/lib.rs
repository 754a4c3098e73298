//! A mapper for Magento 2.0–2.2, whose product payloads carry stock and
//! categories at the top level. It is only a mapper: the registry takes the
//! adapter from the main Magento connector and this mapper for backends
//! whose version is in its narrower range.

#[path = "../../magento/src/mapping.rs"]
pub mod mapping;

use junction_guest::{Adapter, Connector, Listener, Manifest, Operations};

use mapping::Shape;

pub struct MagentoLegacy;

impl Connector for MagentoLegacy {
    fn manifest() -> Manifest {
        let import = Operations::IMPORT;
        Manifest::new(
            "magento-legacy",
            env!("CARGO_PKG_VERSION"),
            "magento",
            ">=2.0.0, <2.3.0",
        )
        .model("category", import)
        .model("product", import | Operations::EXPORT)
        .model("customer", import)
        .model("order", import | Operations::EXPORT)
    }
}

impl Adapter for MagentoLegacy {}

impl Listener for MagentoLegacy {}

magento_mapper!(MagentoLegacy, Shape::Legacy);

// The optional capabilities of the `full-connector` world: none offered.
impl junction_guest::Features for MagentoLegacy {}
impl junction_guest::Lookup for MagentoLegacy {}
impl junction_guest::Webhooks for MagentoLegacy {}
impl junction_guest::Tasks for MagentoLegacy {}

junction_guest::export!(MagentoLegacy);
