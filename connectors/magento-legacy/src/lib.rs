//! A mapper for Magento 2.0–2.2, whose product payloads carry stock and
//! categories at the top level. It is only a mapper: the registry takes the
//! adapter from the main Magento connector and this mapper for backends
//! whose version is in its narrower range.

#[path = "../../magento/src/mapping.rs"]
pub mod mapping;

use junction_guest::mapping::Binder;
use junction_guest::serde_json::Value;
use junction_guest::{
    Adapter, Connector, Dependency, Error, Listener, LocalRecord, Manifest, Mapper, Operations,
    RemoteRecord,
};

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

impl Mapper for MagentoLegacy {
    fn map_import(model: &str, record: &RemoteRecord, binder: &dyn Binder) -> Result<Value, Error> {
        mapping::map_import(model, record, binder, Shape::Legacy)
    }
    fn map_export(
        model: &str,
        record: &LocalRecord,
        changed: Option<&[String]>,
        _binder: &dyn Binder,
    ) -> Result<Value, Error> {
        mapping::map_export(model, record, changed, Shape::Legacy)
    }
    fn dependencies(model: &str, record: &RemoteRecord) -> Result<Vec<Dependency>, Error> {
        mapping::dependencies(model, record, Shape::Legacy)
    }
}

junction_guest::export!(MagentoLegacy);
