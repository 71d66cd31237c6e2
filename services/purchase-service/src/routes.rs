//! HTTP handlers: `POST /api/v1/items/{id}/purchase`, the waiting room
//! (`POST`/`GET /api/v1/items/{id}/queue`), `GET /api/v1/orders[/{id}]`,
//! `POST /api/v1/orders/{id}/cancel`, the payment webhook; and the one place a
//! [`PurchaseError`], [`OrderError`] or [`StoreError`] becomes a status.

use crate::domain::{IdempotencyKey, Quantity};
use crate::order::{Order, OrderError};
use crate::orders::Orders;
use crate::payments::{Notice, Payments};
use crate::purchases::{PurchaseError, PurchaseRequest, Purchases};
use crate::reservations::ReservationEnds;
use crate::room::Room;
use crate::store_error::StoreError;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use common::input::JsonObject;
use inventory::room::{RoomAnswer, Ticket, TicketState};
use serde_json::{Value, json};
use std::collections::HashMap;
use web_layer::ApiError;
use web_layer::auth::AuthUser;
use web_layer::input::{JsonBody, RawBody};
use web_layer::telemetry::RequestId;

impl From<PurchaseError> for ApiError {
    fn from(error: PurchaseError) -> Self {
        match error {
            PurchaseError::NotFound => ApiError::NotFound,
            PurchaseError::InsufficientStock { current_stock } => {
                ApiError::InsufficientStock { current_stock }
            }
            PurchaseError::LimitExceeded {
                limit,
                already_bought,
            } => ApiError::PurchaseLimitExceeded {
                limit,
                already_bought,
            },
            PurchaseError::SaleNotStarted { starts_at } => ApiError::SaleNotStarted {
                starts_at: starts_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            },
            PurchaseError::SaleEnded { ended_at } => ApiError::SaleEnded {
                ended_at: ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            },
            PurchaseError::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            PurchaseError::KeyReused => ApiError::IdempotencyKeyReused,
            PurchaseError::NotAdmitted { state } => ApiError::NotAdmitted {
                state: state.map(TicketState::as_str),
            },
            PurchaseError::Busy => ApiError::busy("purchase not taken", &error),
            PurchaseError::OutcomeUnknown { order_id } => ApiError::OutcomeUnknown { order_id },
            PurchaseError::Store(error) => error.into(),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::NotFound => ApiError::NotFound,
            OrderError::NotReserved { status } => ApiError::OrderNotReserved {
                status: status.to_owned(),
            },
            OrderError::Expired => ApiError::OrderExpired,
            OrderError::Invalid(errors) => ApiError::Validation(errors),
            OrderError::RefundNotAnnounced(_) => {
                ApiError::busy("refund announcement not confirmed", &error)
            }
            OrderError::TooManyCancels { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            OrderError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => error.into(),
            StoreError::Inventory(error) => error.into(),
            StoreError::Unexpected(error) => ApiError::internal(error),
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/items/{id}/purchase").route(web::post().to(purchase)))
        .service(
            web::resource("/api/v1/items/{id}/queue")
                .route(web::post().to(join_queue))
                .route(web::get().to(show_ticket)),
        )
        .service(web::resource("/api/v1/orders").route(web::get().to(list_orders)))
        .service(web::resource("/api/v1/orders/{id}").route(web::get().to(show_order)))
        .service(web::resource("/api/v1/orders/{id}/cancel").route(web::post().to(cancel_order)))
        .service(web::resource("/api/v1/payments/webhook").route(web::post().to(payment_webhook)));
}

fn order_json(order: &Order) -> Value {
    let mut json = json!({
        "id": order.id,
        "item_id": order.item_id,
        "quantity": order.quantity,
        "status": order.status.as_str(),
        "purchased_at": order.purchased_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(pay_by) = order.pay_by {
        json["pay_by"] = pay_by
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
    }
    json
}

async fn cancel_order(
    ends: web::Data<ReservationEnds>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = ends.cancel(caller.id, &id).await?;
    Ok(HttpResponse::Ok().json(order_json(&order)))
}

async fn purchase(
    purchases: web::Data<Purchases>,
    caller: AuthUser,
    item_id: web::Path<u64>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let quantity = Quantity::parse(&body).map_err(ApiError::Validation)?;
    // An empty key is no key: the gateway forwards an empty header as none at all, so
    // the service answers it the same way.
    let idempotency_key = req
        .headers()
        .get("idempotency-key")
        .filter(|value| !value.is_empty())
        .map(|value| {
            value
                .to_str()
                .map_err(|_| "The Idempotency-Key header must be plain text.".to_owned())
                .and_then(IdempotencyKey::parse)
                .map_err(|message| ApiError::validation("idempotency_key", message))
        })
        .transpose()?;
    let request = PurchaseRequest {
        item_id: item_id.into_inner(),
        user_id: caller.id,
        quantity,
        idempotency_key,
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
    };
    let order = purchases.into_inner().purchase(request).await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Purchase successful!",
        "order": order_json(&order),
    })))
}

fn ticket_json(ticket: &Ticket) -> Value {
    let at = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "item_id": ticket.item_id,
        "state": ticket.state.as_str(),
        "position": ticket.position,
        "ahead": ticket.ahead,
        "queue_length": ticket.queue_length,
        "joined_at": at(ticket.joined_at_ms),
        "admitted_until": at(ticket.admitted_until_ms),
        "estimated_wait_secs": ticket.estimated_wait_secs,
    })
}

fn ticket_response(answer: RoomAnswer) -> Result<HttpResponse, ApiError> {
    match answer {
        RoomAnswer::Ticket(ticket) => Ok(HttpResponse::Ok().json(ticket_json(&ticket))),
        RoomAnswer::NoTicket | RoomAnswer::UnknownItem => Err(ApiError::NotFound),
        RoomAnswer::NoRoom => Err(ApiError::NoWaitingRoom),
    }
}

async fn join_queue(
    room: web::Data<Room>,
    caller: AuthUser,
    item_id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    ticket_response(room.join(item_id.into_inner(), caller.id).await?)
}

async fn show_ticket(
    room: web::Data<Room>,
    caller: AuthUser,
    item_id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    ticket_response(room.ticket(item_id.into_inner(), caller.id).await?)
}

async fn list_orders(
    orders: web::Data<Orders>,
    caller: AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let pagination = web_layer::input::pagination(&query)?;
    let (page, total) = orders.orders(caller.id, pagination).await?;
    Ok(HttpResponse::Ok().json(json!({
        "data": page.iter().map(order_json).collect::<Vec<_>>(),
        "page": pagination.page,
        "per_page": pagination.per_page,
        "total": total,
    })))
}

async fn show_order(
    orders: web::Data<Orders>,
    caller: AuthUser,
    order_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = orders.order(caller.id, &order_id).await?;
    Ok(HttpResponse::Ok().json(order_json(&order)))
}

/// The payment provider's webhook: the signature is checked on the raw body first.
async fn payment_webhook(
    payments: web::Data<Payments>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get("payment-signature")
        .and_then(|value| value.to_str().ok());
    if let Err(why) = common::webhook_signature::verify(
        payments.secret.expose(),
        signature,
        &body,
        chrono::Utc::now().timestamp(),
        payments.tolerance_secs,
    ) {
        tracing::warn!(%why, "payment webhook refused");
        return Err(ApiError::Unauthenticated);
    }
    let body = JsonObject::parse(&body).map_err(ApiError::Validation)?;
    match Notice::parse(&body).map_err(ApiError::Validation)? {
        Notice::Ignored { event } => {
            tracing::info!(%event, "payment webhook event ignored");
            Ok(HttpResponse::Ok().json(json!({ "received": true })))
        }
        Notice::Succeeded(payment) => {
            let order = payments.apply_payment(&payment).await?;
            Ok(HttpResponse::Ok().json(order_json(&order)))
        }
    }
}
