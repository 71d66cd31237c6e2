//! Reading orders: a buyer's page of them, one of theirs, or one of anyone's (for the
//! payment provider). Persisted ones come from MySQL (`confirmed`), those still waiting
//! in an outbox (`pending`) through the buyer's own sets of pending orders of the items
//! selling now, so a listing costs in proportion to the buyer's orders and the items
//! selling, however full the outboxes are; a reservation's end is read from Redis,
//! where it is first.

use crate::domain::OrderId;
use crate::order::{Order, OrderError};
use common::input::Pagination;
use db::DbPool;
use db::orders::{self, OrderStatus};
use events::StockEvent;
use inventory::{Outbox, Reservations, Selling};

/// The handle of the order reads.
#[derive(Clone)]
pub struct Orders {
    pub outbox: Outbox,
    pub selling: Selling,
    pub reservations: Reservations,
    pub db: DbPool,
}

/// Which slice of the pending orders (newest first, listed before the persisted ones)
/// and of the persisted ones a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageSplit {
    pending: std::ops::Range<usize>,
    persisted_offset: i64,
    persisted_limit: i64,
}

fn split(pagination: Pagination, pending: usize) -> PageSplit {
    let offset = usize::try_from(pagination.offset()).unwrap_or(usize::MAX);
    let limit = pagination.per_page as usize;
    let start = offset.min(pending);
    let end = offset.saturating_add(limit).min(pending);
    PageSplit {
        pending: start..end,
        persisted_offset: (offset - start) as i64,
        persisted_limit: (limit - (end - start)) as i64,
    }
}

impl Orders {
    /// Reservations' statuses as Redis knows them: their end (paid, cancelled, expired)
    /// is there before MySQL has it. One round trip for all of them.
    pub async fn with_settled_status(&self, orders: &mut [Order]) -> Result<(), OrderError> {
        let mut reserved: Vec<&mut Order> = orders
            .iter_mut()
            .filter(|order| order.status == OrderStatus::Reserved)
            .collect();
        let keys: Vec<(u64, &str)> = reserved
            .iter()
            .map(|o| (o.item_id, o.id.as_str()))
            .collect();
        let settled = self.reservations.settled(&keys).await?;
        for (order, settled) in reserved.iter_mut().zip(settled) {
            if let Some(status) = settled.as_deref().and_then(OrderStatus::parse) {
                order.status = status;
            }
        }
        Ok(())
    }

    /// A page of the user's orders: pending ones first (newest first), then the persisted
    /// ones (newest first), `per_page` at most.
    pub async fn orders(
        &self,
        user_id: u64,
        pagination: Pagination,
    ) -> Result<(Vec<Order>, i64), OrderError> {
        let mut pending = self.pending_orders(user_id, None).await?;
        let mut conn = db::connection(&self.db).await?;
        let ids: Vec<&str> = pending.iter().map(|e| e.order_id.as_str()).collect();
        let already_persisted = db::orders::persisted_among(&mut conn, &ids).await?;
        pending.retain(|event| !already_persisted.contains(&event.order_id));
        pending.sort_by(|a, b| {
            (b.purchased_at_ms, &b.order_id).cmp(&(a.purchased_at_ms, &a.order_id))
        });
        let split = split(pagination, pending.len());
        let (rows, persisted_total) = orders::page_for_user(
            &mut conn,
            user_id,
            split.persisted_offset,
            split.persisted_limit,
        )
        .await?;
        let mut page: Vec<Order> = pending[split.pending].iter().map(Order::pending).collect();
        page.extend(rows.into_iter().map(Order::confirmed));
        drop(conn);
        self.with_settled_status(&mut page).await?;
        Ok((page, persisted_total + pending.len() as i64))
    }

    /// One of the user's orders; another user's, or an id that names no order, is 404.
    pub async fn order(&self, user_id: u64, order_id: &str) -> Result<Order, OrderError> {
        let order_id = OrderId::parse(order_id).ok_or(OrderError::NotFound)?;
        let pending = self
            .pending_orders(user_id, Some(order_id.as_str()))
            .await?
            .pop();
        let order = self.current_order(order_id.as_str(), pending).await?;
        match order {
            Some((order, owner)) if owner == user_id => Ok(order),
            _ => Err(OrderError::NotFound),
        }
    }

    /// An order as it is now, and its buyer, from what Redis had of it (`pending`, read
    /// first) and MySQL (read after): an order persisted and cleared from Redis between
    /// the two reads is in the second. MySQL's row wins when both have it; a reservation
    /// takes its end from Redis (see [`Orders::with_settled_status`]).
    pub async fn current_order(
        &self,
        order_id: &str,
        pending: Option<StockEvent>,
    ) -> Result<Option<(Order, u64)>, OrderError> {
        let mut conn = db::connection(&self.db).await?;
        let row = orders::find(&mut conn, order_id).await?;
        drop(conn);
        let (mut order, owner) = match (row, pending) {
            (Some(row), _) => {
                let owner = row.user_id;
                (Order::confirmed(row), owner)
            }
            (None, Some(event)) => (Order::pending(&event), event.user_id),
            (None, None) => return Ok(None),
        };
        self.with_settled_status(std::slice::from_mut(&mut order))
            .await?;
        Ok(Some((order, owner)))
    }

    /// An order as it is now, whoever bought it (the payment provider is no buyer).
    pub async fn of_anyone(&self, item_id: u64, order_id: &str) -> Result<Order, OrderError> {
        let pending = self
            .outbox
            .event(item_id, order_id)
            .await?
            .and_then(|json| StockEvent::parse(json.as_bytes()).ok());
        self.current_order(order_id, pending)
            .await?
            .map(|(order, _)| order)
            .ok_or(OrderError::NotFound)
    }

    /// The buyer's orders still in an outbox (the one named, if `order_id` is given).
    async fn pending_orders(
        &self,
        user_id: u64,
        order_id: Option<&str>,
    ) -> Result<Vec<StockEvent>, OrderError> {
        let items = self.selling.items().await?;
        Ok(self
            .outbox
            .pending_of_user(user_id, &items, order_id)
            .await?
            .iter()
            .filter_map(|entry| StockEvent::parse(entry.event.as_bytes()).ok())
            .filter(|event| event.user_id == user_id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    fn pages(page: u32, per_page: u32) -> Pagination {
        Pagination { page, per_page }
    }

    #[test]
    fn pending_orders_come_first_and_a_page_never_exceeds_per_page() {
        assert_eq!(
            split(pages(1, 2), 5),
            PageSplit {
                pending: 0..2,
                persisted_offset: 0,
                persisted_limit: 0
            }
        );
        assert_eq!(
            split(pages(3, 2), 5),
            PageSplit {
                pending: 4..5,
                persisted_offset: 0,
                persisted_limit: 1
            }
        );
        assert_eq!(
            split(pages(4, 2), 5),
            PageSplit {
                pending: 5..5,
                persisted_offset: 1,
                persisted_limit: 2
            }
        );
    }

    #[quickcheck]
    fn pages_tile_the_pending_then_persisted_sequence(page: u8, per_page: u8, pending: u8) -> bool {
        let (page, per_page) = (u32::from(page) + 1, u32::from(per_page % 100) + 1);
        let s = split(pages(page, per_page), usize::from(pending));
        let offset = u64::from(page - 1) * u64::from(per_page);
        let taken = s.pending.len() as i64 + s.persisted_limit;
        taken == i64::from(per_page)
            && s.pending.start as u64 == offset.min(u64::from(pending))
            && s.persisted_offset as u64 + s.pending.start as u64 == offset
    }
}
