//! `catalog-service seed`: the reference's demo items, for local and testing
//! environments only. Idempotent: an item whose name already exists is left alone.

use crate::catalog::Catalog;
use crate::domain::{ItemName, NewItem, SaleSchedule};
use common::config::Environment;

pub const DEMO_ITEMS: [(&str, &str, u64, u32); 2] = [
    (
        "Fashion Gadget",
        "A gadget everyone wants this season.",
        1999,
        100,
    ),
    ("Super Device", "The device that sells out first.", 4999, 50),
];

pub async fn seed(catalog: &Catalog, env: Environment) -> anyhow::Result<Vec<String>> {
    if env.is_production() {
        anyhow::bail!("refusing to seed demo data with APP_ENV=production");
    }
    let mut created = Vec::new();
    for (name, description, price, stock) in DEMO_ITEMS {
        let mut conn = db::connection(&catalog.db).await?;
        if crate::items::find_live_by_name(&mut conn, name)
            .await?
            .is_some()
        {
            continue;
        }
        drop(conn);
        let new = NewItem {
            name: ItemName::parse(name).map_err(anyhow::Error::msg)?,
            description: Some(description.to_owned()),
            price,
            stock,
            max_per_user: None,
            schedule: SaleSchedule::default(),
        };
        catalog.create(new).await?;
        created.push(name.to_owned());
    }
    Ok(created)
}
