//! The `orders` table's one owner: an order's statuses, and every query any service runs
//! on the table, next to its model (reads: [`reads`], writes: [`writes`]). A query that
//! is part of a caller's transaction takes the caller's `&mut AsyncMysqlConnection`.

mod reads;
mod writes;

pub use reads::*;
pub use writes::*;

/// An order's status, the one spelling of it: `confirmed` is a final order in MySQL and
/// `pending` one still in an outbox (never in MySQL); a reservation is `reserved` until
/// it is `paid`, `cancelled` or `expired`. inventory's lifecycle script writes the last
/// three (a test there checks its spellings parse here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Reserved,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Reserved,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    /// A status as MySQL or a reservation's settled marker in Redis
    /// (`paid:<payment id>`) spells it.
    pub fn parse(raw: &str) -> Option<Self> {
        let name = raw.split(':').next()?;
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_spelling_and_settled_markers_too() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("paid:pay_1"), Some(OrderStatus::Paid));
        assert_eq!(OrderStatus::parse("placed"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }
}
