//! The payment provider's webhook: a signed `payment.succeeded` ends a reservation as
//! paid. The signature (`common::webhook_signature`) is checked on the raw bytes before
//! anything is parsed. A payment that cannot be applied (the reservation expired or was
//! cancelled, or another payment paid it) is refused with 409 and announced as
//! `payment.refund_required` on RabbitMQ, confirmed before the answer, so the money goes
//! back; the provider retries any non-2xx, and a retry changes nothing more. A
//! redelivery of the payment that paid the order is answered 200 with no effect, also
//! once Redis has forgotten the payment's id: MySQL's `orders.payment_id` says so.

use crate::domain::{OrderId, PaymentId};
use crate::order::{Order, OrderError};
use crate::reservations::ReservationEnds;
use crate::store_error::StoreError;
use common::ValidationErrors;
use common::input::JsonObject;
use db::orders::OrderStatus;
use inventory::lifecycle::{Ended, Step};

/// The only event that moves an order; the provider's others are acknowledged and
/// ignored.
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";

/// A webhook's body, parsed: a succeeded payment, or an event this service ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Succeeded(Payment),
    Ignored { event: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// Minor units.
    pub amount: u64,
}

impl Notice {
    /// Fields beyond the ones read are allowed: providers add to their events.
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(event) = errors.check("event", body.string("event").map(str::to_owned)) else {
            return Err(errors);
        };
        if event != PAYMENT_SUCCEEDED {
            return Ok(Notice::Ignored { event });
        }
        let order_id = errors.check(
            "order_id",
            body.string("order_id").and_then(|raw| {
                OrderId::parse(raw).ok_or_else(|| {
                    "The order_id must be 1-64 letters, digits or dashes.".to_owned()
                })
            }),
        );
        let payment_id = errors.check(
            "payment_id",
            body.string("payment_id").and_then(PaymentId::parse),
        );
        let amount = errors.check(
            "amount",
            body.integer("amount").and_then(|amount| {
                u64::try_from(amount).map_err(|_| "The amount must be at least 0.".to_owned())
            }),
        );
        match (order_id, payment_id, amount) {
            (Some(order_id), Some(payment_id), Some(amount)) if errors.is_empty() => {
                Ok(Notice::Succeeded(Payment {
                    order_id,
                    payment_id,
                    amount,
                }))
            }
            _ => Err(errors),
        }
    }
}

/// Why a payment ended up not paying its order (a refund was announced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Expired,
    NotReserved(OrderStatus),
}

/// The handle of the payment webhook's use case.
#[derive(Clone)]
pub struct Payments {
    pub ends: ReservationEnds,
    /// Publishes a refund's announcement, confirmed before the answer.
    pub publisher: std::sync::Arc<events::Publisher>,
    /// The webhook's signing secret (`PAYMENT_WEBHOOK_SECRET`).
    pub secret: crate::configuration::Secret,
    /// How old a signature may be (`PAYMENT_WEBHOOK_TOLERANCE_SECS`).
    pub tolerance_secs: u64,
}

impl Payments {
    /// Applies a succeeded payment to its reservation: the order, paid by this payment
    /// now or by its earlier delivery.
    pub async fn apply_payment(&self, payment: &Payment) -> Result<Order, OrderError> {
        let order_id = payment.order_id.as_str();
        let item_id = self
            .ends
            .item_of_order(order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        let step = Step::Pay {
            payment_id: payment.payment_id.as_str(),
            amount: payment.amount,
        };
        let refused = match self.ends.reservations.end(item_id, order_id, step).await? {
            Ended::Paid { event } => {
                let event = self.ends.offer_ended(&event)?;
                return Ok(Order::ended(&event));
            }
            Ended::DuplicatePayment { order_id: paid } => {
                return self.applied_before(item_id, order_id, &paid).await;
            }
            Ended::WrongAmount { due } => {
                return Err(OrderError::Invalid(ValidationErrors::single(
                    "amount",
                    format!("The amount due for this order is {due}."),
                )));
            }
            Ended::Expired { event } => {
                self.ends.sold_out.clear(item_id);
                self.ends.offer_ended(&event)?;
                Refused::Expired
            }
            Ended::NotReserved { settled } => {
                // Redis forgets an applied payment's id after SETTLED_TTL_SECS (and all
                // of it if it lost data); MySQL has it for good.
                let payment_id = payment.payment_id.as_str();
                let paid = match settled.as_deref().and_then(|s| s.strip_prefix("paid:")) {
                    Some(paid_with) if paid_with == payment_id => Some(order_id.to_owned()),
                    _ => {
                        let mut conn = db::connection(&self.ends.orders.db).await?;
                        db::orders::paid_by(&mut conn, payment_id).await?
                    }
                };
                if let Some(paid) = paid {
                    return self.applied_before(item_id, order_id, &paid).await;
                }
                let status = match settled.as_deref().and_then(OrderStatus::parse) {
                    Some(status) => status,
                    None => self.ends.orders.of_anyone(item_id, order_id).await?.status,
                };
                match status {
                    OrderStatus::Expired => Refused::Expired,
                    status => Refused::NotReserved(status),
                }
            }
            other @ (Ended::Cancelled { .. }
            | Ended::NotTheBuyer
            | Ended::NotDue
            | Ended::TooManyCancels { .. }) => {
                return Err(StoreError::unexpected(anyhow::anyhow!(
                    "a payment answered {other:?}"
                ))
                .into());
            }
        };
        self.announce_refund(payment, refused).await?;
        Err(match refused {
            Refused::Expired => OrderError::Expired,
            Refused::NotReserved(status) => OrderError::NotReserved {
                status: status.as_str(),
            },
        })
    }

    /// The answer to a payment already applied, to the order `paid`: this order, paid
    /// (a redelivery: nothing more happens), or a refusal when it paid another order.
    async fn applied_before(
        &self,
        item_id: u64,
        order_id: &str,
        paid: &str,
    ) -> Result<Order, OrderError> {
        if paid != order_id {
            return Err(OrderError::Invalid(ValidationErrors::single(
                "payment_id",
                "This payment was already applied to another order.",
            )));
        }
        let mut order = self.ends.orders.of_anyone(item_id, order_id).await?;
        order.status = OrderStatus::Paid;
        Ok(order)
    }

    /// Publishes `payment.refund_required` and waits for the broker's confirm: the
    /// provider is told 409 only once the refund cannot be lost.
    async fn announce_refund(&self, payment: &Payment, why: Refused) -> Result<(), OrderError> {
        let reason = match why {
            Refused::Expired => "expired",
            Refused::NotReserved(status) => status.as_str(),
        };
        let body = serde_json::json!({
            "event": "payment.refund_required",
            "order_id": payment.order_id.as_str(),
            "payment_id": payment.payment_id.as_str(),
            "amount": payment.amount,
            "order_status": reason,
        });
        let queue = &self.publisher.topology().refund_queue;
        let message_id = format!("refund:{}", payment.payment_id.as_str());
        tracing::warn!(
            order_id = payment.order_id.as_str(),
            payment_id = payment.payment_id.as_str(),
            reason,
            "payment for an order that is not reserved; refund required"
        );
        self.publisher
            .publish(queue, &message_id, body.to_string().as_bytes(), &[])
            .await
            .map_err(OrderError::RefundNotAnnounced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_parse_succeeded_payments_and_ignore_other_events() {
        let body = |json: &str| JsonObject::parse(json.as_bytes()).unwrap();
        assert_eq!(
            Notice::parse(&body(
                r#"{"event":"payment.succeeded","order_id":"o-1","payment_id":"pi_1","amount":3000,"livemode":false}"#
            )),
            Ok(Notice::Succeeded(Payment {
                order_id: OrderId::parse("o-1").unwrap(),
                payment_id: PaymentId::parse("pi_1").unwrap(),
                amount: 3000,
            }))
        );
        assert_eq!(
            Notice::parse(&body(r#"{"event":"payment.created"}"#)),
            Ok(Notice::Ignored {
                event: "payment.created".into()
            })
        );
        let errors = Notice::parse(&body(
            r#"{"event":"payment.succeeded","order_id":"x y","payment_id":"","amount":-1}"#,
        ))
        .unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["amount", "order_id", "payment_id"]
        );
    }
}
