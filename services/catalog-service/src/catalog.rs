//! The catalog's use cases. Every write keeps MySQL and the item's Redis state in step:
//! the Redis change is made inside the MySQL transaction, so a Redis failure rolls the
//! row back, and a failed commit undoes the Redis change. Writes to an existing item run
//! under that item's distributed lock.

use crate::domain::{ItemChanges, NewItem, RestockQuantity, check_window};
use crate::items::{self, Item};
use common::ValidationErrors;
use common::input::Pagination;
use db::DbPool;
use diesel_async::AsyncConnection;
use inventory::{DistributedLock, ItemStore};

/// Why a catalog operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no such item")]
    NotFound,
    /// The change is invalid against the item as it is (a sale closing before it opens).
    #[error("invalid change: {0}")]
    Invalid(ValidationErrors),
    /// A restock would take the stock beyond what the column holds.
    #[error("the stock would exceed its maximum")]
    StockOutOfRange,
    #[error(transparent)]
    Database(#[from] db::Error),
    /// Redis, or the item's lock (busy).
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
}

impl From<diesel::result::Error> for CatalogError {
    fn from(error: diesel::result::Error) -> Self {
        CatalogError::Database(error.into())
    }
}

/// An item as clients see it: MySQL's row with Redis's live stock.
#[derive(Debug, Clone)]
pub struct ItemView {
    pub item: Item,
    pub stock: u64,
}

#[derive(Clone)]
pub struct Catalog {
    pub db: DbPool,
    pub store: ItemStore,
    pub lock: DistributedLock,
}

impl Catalog {
    /// One page of live items with their live stock (one Redis round trip for the page;
    /// MySQL's figure where Redis has none).
    pub async fn page(&self, pagination: Pagination) -> Result<(Vec<ItemView>, i64), CatalogError> {
        let mut conn = db::connection(&self.db).await?;
        let (rows, total) = items::page(&mut conn, pagination.offset(), pagination.limit()).await?;
        drop(conn);
        let ids: Vec<u64> = rows.iter().map(|i| i.id).collect();
        let live = self.store.stocks(&ids).await?;
        let views = rows
            .into_iter()
            .zip(live)
            .map(|(item, live)| ItemView {
                stock: live.unwrap_or(u64::from(item.stock)),
                item,
            })
            .collect();
        Ok((views, total))
    }

    pub async fn get(&self, id: u64) -> Result<ItemView, CatalogError> {
        let item = items::find_live(&mut *db::connection(&self.db).await?, id)
            .await?
            .ok_or(CatalogError::NotFound)?;
        self.view(item).await
    }

    async fn view(&self, item: Item) -> Result<ItemView, CatalogError> {
        let live = self.store.stocks(&[item.id]).await?;
        let stock = live
            .into_iter()
            .next()
            .flatten()
            .unwrap_or(u64::from(item.stock));
        Ok(ItemView { item, stock })
    }

    pub async fn create(&self, new: NewItem) -> Result<ItemView, CatalogError> {
        let mut conn = db::connection(&self.db).await?;
        let mut primed = None;
        let created = conn
            .transaction::<_, CatalogError, _>(async |c| {
                let item = items::insert(&mut *c, &new).await?;
                self.store.put(&item.state()).await?;
                primed = Some(item.id);
                Ok(item)
            })
            .await;
        match created {
            Ok(item) => {
                tracing::info!(item_id = item.id, stock = item.stock, "item created");
                Ok(ItemView {
                    stock: u64::from(item.stock),
                    item,
                })
            }
            Err(error) => {
                if let Some(id) = primed {
                    self.undo(self.store.forget(id).await, id);
                }
                Err(error)
            }
        }
    }

    pub async fn update(&self, id: u64, changes: ItemChanges) -> Result<ItemView, CatalogError> {
        let lock_key = self.store.keys(id).lock();
        self.lock
            .with_lock(&lock_key, async || {
                let mut conn = db::connection(&self.db).await?;
                let before = items::find_live(&mut conn, id)
                    .await?
                    .ok_or(CatalogError::NotFound)?;
                let schedule = before.schedule();
                check_window(
                    changes.sale_starts_at.unwrap_or(schedule.sale_starts_at),
                    changes.sale_ends_at.unwrap_or(schedule.sale_ends_at),
                )
                .map_err(|message| {
                    CatalogError::Invalid(ValidationErrors::single("sale_ends_at", message))
                })?;
                let (mut limit_changed, mut terms_changed) = (false, false);
                let outcome = conn
                    .transaction::<_, CatalogError, _>(async |c| {
                        items::update(&mut *c, id, &changes).await?;
                        let updated = items::find_live(&mut *c, id)
                            .await?
                            .ok_or(CatalogError::NotFound)?;
                        if let Some(limit) = changes.max_per_user {
                            self.store.set_limit(id, limit).await?;
                            limit_changed = true;
                        }
                        if changes.changes_terms() {
                            self.store.set_terms(id, &updated.terms()).await?;
                            terms_changed = true;
                        }
                        Ok(updated)
                    })
                    .await;
                let after = match outcome {
                    Ok(after) => after,
                    Err(error) => {
                        if limit_changed {
                            self.undo(self.store.set_limit(id, before.max_per_user).await, id);
                        }
                        if terms_changed {
                            self.undo(self.store.set_terms(id, &before.terms()).await, id);
                        }
                        return Err(error);
                    }
                };
                drop(conn);
                self.view(after).await
            })
            .await
    }

    /// Soft-deletes an item. It goes off sale in Redis first, so no purchase can slip in
    /// between; if MySQL then fails, it goes back on sale.
    pub async fn delete(&self, id: u64) -> Result<(), CatalogError> {
        let lock_key = self.store.keys(id).lock();
        self.lock
            .with_lock(&lock_key, async || {
                let mut conn = db::connection(&self.db).await?;
                items::find_live(&mut conn, id)
                    .await?
                    .ok_or(CatalogError::NotFound)?;
                self.store.set_on_sale(id, false).await?;
                match items::soft_delete(&mut conn, id).await {
                    Ok(_) => {
                        tracing::info!(item_id = id, "item deleted");
                        Ok(())
                    }
                    Err(error) => {
                        self.undo(self.store.set_on_sale(id, true).await, id);
                        Err(error.into())
                    }
                }
            })
            .await
    }

    pub async fn restock(
        &self,
        id: u64,
        quantity: RestockQuantity,
    ) -> Result<ItemView, CatalogError> {
        let lock_key = self.store.keys(id).lock();
        let quantity = quantity.get();
        self.lock
            .with_lock(&lock_key, async || {
                let mut conn = db::connection(&self.db).await?;
                let mut added = false;
                let outcome = conn
                    .transaction::<_, CatalogError, _>(async |c| {
                        if !items::add_stock(&mut *c, id, quantity)
                            .await
                            .map_err(out_of_range)?
                        {
                            return Err(CatalogError::NotFound);
                        }
                        self.store.add_stock(id, quantity).await?;
                        added = true;
                        Ok(())
                    })
                    .await;
                if let Err(error) = outcome {
                    if added {
                        let undone = self.store.take_back_stock(id, quantity).await;
                        if let Ok(sold @ 1..) = undone {
                            tracing::error!(
                                item_id = id,
                                sold,
                                "units of a restock that failed in MySQL sold meanwhile; run sync-stock"
                            );
                        }
                        self.undo(undone, id);
                    }
                    return Err(error);
                }
                tracing::info!(item_id = id, quantity, "item restocked");
                let item = items::find_live(&mut conn, id)
                    .await?
                    .ok_or(CatalogError::NotFound)?;
                drop(conn);
                self.view(item).await
            })
            .await
    }

    /// Loads into Redis every item it does not know yet, never overwriting a live figure.
    pub async fn warm_up(&self) -> Result<usize, CatalogError> {
        let rows = items::all(&mut *db::connection(&self.db).await?).await?;
        let states: Vec<_> = rows.iter().map(Item::state).collect();
        Ok(self.store.warm(&states).await?)
    }

    /// Reports a failed compensation: Redis and MySQL now disagree until sync-stock.
    fn undo<T, E: std::fmt::Display>(&self, result: Result<T, E>, item_id: u64) {
        if let Err(error) = result {
            tracing::error!(item_id, %error, "could not undo a Redis change after a MySQL failure; run sync-stock");
        }
    }
}

/// MySQL refuses a stock beyond `INT UNSIGNED`; that is the client's input at fault.
fn out_of_range(error: diesel::result::Error) -> CatalogError {
    let message = error.to_string();
    if message.contains("Out of range") || message.contains("out of range") {
        CatalogError::StockOutOfRange
    } else {
        error.into()
    }
}
