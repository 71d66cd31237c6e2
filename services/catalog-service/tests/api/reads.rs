use crate::helpers::{TestApp, assert_envelope, error_fields, spawn_app};
use redis::AsyncCommands;
use serde_json::json;

#[actix_web::test]
async fn pagination_bounds_and_totals() {
    let app = spawn_app().await;
    for i in 0..25 {
        let response = app
            .create_item(json!({ "name": format!("Item {i:02}"), "price": 100 + i, "stock": i }))
            .await;
        assert_eq!(response.status, 201);
    }
    let first = app.client.get("/api/v1/items", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["total"], 25);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["per_page"], 20);
    assert_eq!(first.body["data"].as_array().unwrap().len(), 20);
    assert_eq!(first.body["data"][0]["name"], "Item 00");

    let second = app
        .client
        .get("/api/v1/items?page=2&per_page=20", None)
        .await;
    let names: Vec<_> = second.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names.len(), 5);
    assert_eq!(names[0], "Item 20");

    let all = app.client.get("/api/v1/items?per_page=100", None).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 25);
    let beyond = app.client.get("/api/v1/items?page=9", None).await;
    assert_eq!(beyond.body["data"].as_array().unwrap().len(), 0);
    assert_eq!(beyond.body["total"], 25);
    let last = app
        .client
        .get("/api/v1/items?page=42949672&per_page=100", None)
        .await;
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.body["data"].as_array().unwrap().len(), 0);
    let past_the_bound = app.client.get("/api/v1/items?page=42949673", None).await;
    assert_envelope(&past_the_bound, 422, "VALIDATION_FAILED");
    assert_eq!(
        past_the_bound.body["errors"]["page"][0],
        "The page must be an integer between 1 and 42949672."
    );

    for (query, field) in [
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("per_page=-5", "per_page"),
    ] {
        let response = app
            .client
            .get(&format!("/api/v1/items?{query}"), None)
            .await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&response), [field], "{query}");
    }
}

/// The item's page and the listing (where it is the only item) both show `stock`.
async fn assert_shown_stock(app: &TestApp, id: u64, stock: i64) {
    let item = app.client.get(&format!("/api/v1/items/{id}"), None).await;
    assert_eq!(item.status, 200);
    assert_eq!(item.body["stock"], stock);
    let listed = app.client.get("/api/v1/items", None).await;
    assert_eq!(listed.body["data"][0]["stock"], stock);
}

#[actix_web::test]
async fn stock_is_the_live_redis_figure_with_mysql_as_fallback() {
    let app = spawn_app().await;
    let id = app.item_with_stock(10).await;
    let stock_key = app.keys(id).stock();
    let mut redis = app.env.redis.connection().await;
    redis.set::<_, _, ()>(&stock_key, 7).await.unwrap();
    assert_shown_stock(&app, id, 7).await;

    redis.del::<_, ()>(&stock_key).await.unwrap();
    assert_shown_stock(&app, id, 10).await;
}

#[actix_web::test]
async fn absent_and_deleted_items_are_404_and_bad_ids_422() {
    let app = spawn_app().await;
    assert_envelope(
        &app.client.get("/api/v1/items/999999", None).await,
        404,
        "NOT_FOUND",
    );
    let id = app.item_with_stock(3).await;
    let deleted = app.delete_item(id).await;
    assert_eq!(deleted.status, 204);
    assert_envelope(
        &app.client.get(&format!("/api/v1/items/{id}"), None).await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(app.client.get("/api/v1/items", None).await.body["total"], 0);
    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let response = app.client.get(&format!("/api/v1/items/{bad}"), None).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&response), ["id"]);
    }
}

#[actix_web::test]
async fn one_bad_stock_figure_in_redis_never_fails_a_page() {
    let app = spawn_app().await;
    let good = app.item_with_stock(5).await;
    let negative = app.item_with_stock(7).await;
    let garbled = app.item_with_stock(9).await;
    let mut redis = app.env.redis.connection().await;
    redis
        .set::<_, _, ()>(app.keys(negative).stock(), -3)
        .await
        .unwrap();
    redis
        .set::<_, _, ()>(app.keys(garbled).stock(), "lots")
        .await
        .unwrap();
    let page = app.client.get("/api/v1/items", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let stock_of = |id: u64| {
        page.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["stock"].clone())
    };
    assert_eq!(stock_of(good), Some(json!(5)));
    assert_eq!(stock_of(negative), Some(json!(7)), "MySQL's figure instead");
    assert_eq!(stock_of(garbled), Some(json!(9)), "MySQL's figure instead");
    let one = app
        .client
        .get(&format!("/api/v1/items/{negative}"), None)
        .await;
    assert_eq!(one.status, 200);
}
