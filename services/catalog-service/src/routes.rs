//! HTTP handlers for `/api/v1/items*` (purchase excepted): parse, call [`Catalog`], map.

use crate::catalog::{Catalog, CatalogError, ItemView};
use crate::domain::{ItemChanges, NewItem, RestockQuantity};
use actix_web::{HttpResponse, web};
use chrono::SecondsFormat;
use serde_json::{Value, json};
use std::collections::HashMap;
use web_layer::ApiError;
use web_layer::auth::AdminUser;
use web_layer::input::JsonBody;

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound => ApiError::NotFound,
            CatalogError::Invalid(errors) => ApiError::Validation(errors),
            CatalogError::StockOutOfRange => ApiError::validation(
                "quantity",
                "The quantity would take the stock beyond its maximum.",
            ),
            CatalogError::Database(error) => error.into(),
            CatalogError::Inventory(error) => error.into(),
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/items")
            .service(
                web::resource("")
                    .route(web::get().to(list))
                    .route(web::post().to(create)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::get().to(show))
                    .route(web::patch().to(update))
                    .route(web::delete().to(delete)),
            )
            .service(web::resource("/{id}/restock").route(web::post().to(restock))),
    );
}

pub fn item_json(view: &ItemView) -> Value {
    let item = &view.item;
    json!({
        "id": item.id,
        "name": item.name,
        "description": item.description,
        "price": item.price,
        "stock": view.stock,
        "max_per_user": item.max_per_user,
        "sale_starts_at": item.sale_starts_at.map(|at| at.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)),
        "sale_ends_at": item.sale_ends_at.map(|at| at.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)),
        "payment_window_secs": item.payment_window_secs,
        "waiting_room": item.waiting_room,
        "max_admitted": item.max_admitted,
        "pass_secs": item.pass_secs,
        "created_at": item.created_at.and_utc().to_rfc3339(),
        "updated_at": item.updated_at.and_utc().to_rfc3339(),
    })
}

async fn list(
    catalog: web::Data<Catalog>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let pagination = web_layer::input::pagination(&query)?;
    let (items, total) = catalog.page(pagination).await?;
    Ok(HttpResponse::Ok().json(json!({
        "data": items.iter().map(item_json).collect::<Vec<_>>(),
        "page": pagination.page,
        "per_page": pagination.per_page,
        "total": total,
    })))
}

async fn show(catalog: web::Data<Catalog>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let view = catalog.get(id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(item_json(&view)))
}

async fn create(
    catalog: web::Data<Catalog>,
    _: AdminUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let new = NewItem::parse(&body).map_err(ApiError::Validation)?;
    let view = catalog.create(new).await?;
    Ok(HttpResponse::Created().json(item_json(&view)))
}

async fn update(
    catalog: web::Data<Catalog>,
    _: AdminUser,
    id: web::Path<u64>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let changes = ItemChanges::parse(&body).map_err(ApiError::Validation)?;
    let view = catalog.update(id.into_inner(), changes).await?;
    Ok(HttpResponse::Ok().json(item_json(&view)))
}

async fn delete(
    catalog: web::Data<Catalog>,
    _: AdminUser,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    catalog.delete(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn restock(
    catalog: web::Data<Catalog>,
    _: AdminUser,
    id: web::Path<u64>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let quantity = RestockQuantity::parse(&body).map_err(ApiError::Validation)?;
    let view = catalog.restock(id.into_inner(), quantity).await?;
    Ok(HttpResponse::Ok().json(item_json(&view)))
}
