//! The catalog's use cases. Every write keeps MySQL and the item's Redis state in step:
//! the Redis change is made inside the MySQL transaction, so a Redis failure rolls the
//! row back, and a failed commit undoes the Redis change. A Redis change whose outcome
//! is unknown (no reply, or replicas that did not acknowledge it) counts as made: its
//! undo is exact either way (a restock is named, and its undo voids it if it never
//! arrived), and the undo itself is repeated until replicas have it. Writes to an
//! existing item run under that item's distributed lock.

use crate::domain::{ItemChanges, NewItem, RestockQuantity, check_window};
use crate::items::{self, Item};
use common::ValidationErrors;
use common::input::Pagination;
use db::DbPool;
use diesel_async::AsyncConnection;
use inventory::{DistributedLock, Inventory};

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
    pub store: Inventory,
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
        let live = self.store.stock.stocks(&ids).await?;
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
        let live = self.store.stock.stocks(&[item.id]).await?;
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
                primed = Some(item.id);
                self.store.stock.put(&item.state()).await?;
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
                    self.undo(id, async || self.store.stock.forget(id).await)
                        .await;
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
                            limit_changed = true;
                            self.store.stock.set_limit(id, limit).await?;
                        }
                        if changes.changes_terms() {
                            terms_changed = true;
                            self.store.stock.set_terms(id, &updated.terms()).await?;
                        }
                        Ok(updated)
                    })
                    .await;
                let after = match outcome {
                    Ok(after) => after,
                    Err(error) => {
                        if limit_changed {
                            self.undo(id, async || {
                                self.store.stock.set_limit(id, before.max_per_user).await
                            })
                            .await;
                        }
                        if terms_changed {
                            self.undo(id, async || {
                                self.store.stock.set_terms(id, &before.terms()).await
                            })
                            .await;
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
                let deleted = match self.store.stock.set_on_sale(id, false).await {
                    Ok(()) => items::soft_delete(&mut conn, id)
                        .await
                        .map_err(CatalogError::from),
                    Err(error) => Err(error.into()),
                };
                match deleted {
                    Ok(_) => {
                        tracing::info!(item_id = id, "item deleted");
                        Ok(())
                    }
                    Err(error) => {
                        self.undo(id, async || self.store.stock.set_on_sale(id, true).await)
                            .await;
                        Err(error)
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
                let restock_id = uuid::Uuid::new_v4().simple().to_string();
                let mut added = false;
                let outcome = conn
                    .transaction::<_, CatalogError, _>(async |c| {
                        if !db::stock::apply(&mut *c, db::stock::Change::Restock, id, quantity)
                            .await
                            .map_err(out_of_range)?
                        {
                            return Err(CatalogError::NotFound);
                        }
                        added = true;
                        self.store.stock.add_stock(id, quantity, &restock_id).await?;
                        Ok(())
                    })
                    .await;
                if let Err(error) = outcome {
                    if added {
                        let undone = self
                            .undo(id, async || {
                                self.store.stock.take_back_stock(id, quantity, &restock_id).await
                            })
                            .await;
                        if let Some(sold @ 1..) = undone {
                            tracing::error!(
                                item_id = id,
                                sold,
                                "units of a restock that failed in MySQL sold meanwhile; run sync-stock"
                            );
                        }
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
        Ok(self.store.stock.warm(&states).await?)
    }

    /// Undoes a Redis change after MySQL refused it, repeating the (idempotent) undo
    /// until replicas have it, a few times at most; reports one that never succeeded:
    /// Redis and MySQL then disagree until sync-stock.
    async fn undo<T>(
        &self,
        item_id: u64,
        undo: impl AsyncFn() -> Result<T, inventory::Error>,
    ) -> Option<T> {
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            match undo().await {
                Ok(done) => return Some(done),
                Err(error) if attempt < ATTEMPTS => {
                    tracing::warn!(item_id, %error, attempt, "undo of a Redis change not confirmed; repeating it");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(error) => {
                    tracing::error!(item_id, %error, "could not undo a Redis change after a MySQL failure; run sync-stock");
                }
            }
        }
        None
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
