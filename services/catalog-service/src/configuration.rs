//! catalog-service settings: the shared sections it reads.

use common::config::OwnSettings;
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "catalog-service"
port = 8082
"#;

/// catalog-service reads only the shared sections.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogOwn {}

impl OwnSettings for CatalogOwn {
    const DEFAULTS: &'static str = DEFAULTS;
}

pub type Settings = common::config::Settings<CatalogOwn>;
