use crate::helpers::{assert_envelope, error_fields, spawn_app};
use serde_json::{Value, json};

#[actix_web::test]
async fn admin_writes_need_an_admin_token() {
    let app = spawn_app().await;
    let id = app.item_with_stock(5).await;
    let body = Some(
        json!({"name": "x", "price": 1, "stock": 1})
            .to_string()
            .into_bytes(),
    );
    let writes = [
        ("POST", "/api/v1/items".to_owned()),
        ("PATCH", format!("/api/v1/items/{id}")),
        ("DELETE", format!("/api/v1/items/{id}")),
        ("POST", format!("/api/v1/items/{id}/restock")),
    ];
    for (method, path) in &writes {
        let anonymous = app.client.send(method, path, None, &[], body.clone()).await;
        assert_envelope(&anonymous, 401, "UNAUTHENTICATED");
        let user = app
            .client
            .send(method, path, Some(&app.user), &[], body.clone())
            .await;
        assert_envelope(&user, 403, "FORBIDDEN");
    }
    assert_eq!(app.mysql_stock(id).await, 5);
    assert_eq!(app.client.get("/api/v1/items", None).await.body["total"], 1);
}

#[actix_web::test]
async fn create_update_restock_delete_keep_mysql_and_redis_in_step() {
    let app = spawn_app().await;
    let created = app
        .create_item(json!({"name": "Lamp", "description": "bright", "price": 2500, "stock": 8, "max_per_user": 2}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body["max_per_user"], 2);
    assert_eq!(app.redis_stock(id).await, Some(8));
    assert_eq!(app.redis_on_sale(id).await, Some(1));

    let updated = app
        .patch_item(
            id,
            &json!({"name": "Desk Lamp", "price": 2700, "max_per_user": null}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["name"], "Desk Lamp");
    assert_eq!(updated.body["price"], 2700);
    assert_eq!(updated.body["description"], "bright");
    assert_eq!(updated.body["max_per_user"], Value::Null);
    assert_eq!(updated.body["stock"], 8);

    let restocked = app.restock(id, json!(5)).await;
    assert_eq!(restocked.status, 200, "{}", restocked.body);
    assert_eq!(restocked.body["stock"], 13);
    assert_eq!(app.mysql_stock(id).await, 13);
    assert_eq!(app.redis_stock(id).await, Some(13));

    let deleted = app.delete_item(id).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.redis_on_sale(id).await, Some(0));
    assert_envelope(&app.restock(id, json!(1)).await, 404, "NOT_FOUND");
    assert_envelope(
        &app.patch_item(id, &json!({"price": 1})).await,
        404,
        "NOT_FOUND",
    );
    let again = app.delete_item(id).await;
    assert_envelope(&again, 404, "NOT_FOUND");
    assert_eq!(app.mysql_stock(id).await, 13);
}

#[actix_web::test]
async fn every_admin_field_is_validated_by_name() {
    let app = spawn_app().await;
    let create_cases = [
        (json!({}), vec!["name", "price", "stock"]),
        (json!({"name": "", "price": 1, "stock": 1}), vec!["name"]),
        (
            json!({"name": "n".repeat(256), "price": 1, "stock": 1}),
            vec!["name"],
        ),
        (
            json!({"name": "A", "description": 7, "price": 1, "stock": 1}),
            vec!["description"],
        ),
        (
            json!({"name": "A", "description": "d".repeat(10_001), "price": 1, "stock": 1}),
            vec!["description"],
        ),
        (json!({"name": "A", "price": -1, "stock": 1}), vec!["price"]),
        (
            json!({"name": "A", "price": "12", "stock": 1}),
            vec!["price"],
        ),
        (json!({"name": "A", "price": 1, "stock": -1}), vec!["stock"]),
        (
            json!({"name": "A", "price": 1, "stock": 2.5}),
            vec!["stock"],
        ),
        (
            json!({"name": "A", "price": 1, "stock": 5_000_000_000u64}),
            vec!["stock"],
        ),
        (
            json!({"name": "A", "price": 1, "stock": 1, "max_per_user": 0}),
            vec!["max_per_user"],
        ),
        (
            json!({"name": "A", "price": 1, "stock": 1, "max_per_user": "two"}),
            vec!["max_per_user"],
        ),
        (
            json!({"name": "A", "price": 1, "stock": 1, "colour": "red"}),
            vec!["colour"],
        ),
        (
            json!({"name": "La\u{1c}mp", "price": 1, "stock": 1}),
            vec!["name"],
        ),
    ];
    for (body, fields) in create_cases {
        let response = app.create_item(body.clone()).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&response), fields, "for {body}");
    }
    assert_eq!(app.client.get("/api/v1/items", None).await.body["total"], 0);

    let id = app.item_with_stock(4).await;
    let path = format!("/api/v1/items/{id}");
    for (body, field) in [
        (json!({}), "body"),
        (json!({"stock": 100}), "stock"),
        (json!({"name": null}), "name"),
        (json!({"price": 1.5}), "price"),
        (json!({"max_per_user": -3}), "max_per_user"),
        (
            json!({"price": 7, "x-schemathesis-unknown-property": 42}),
            "x-schemathesis-unknown-property",
        ),
    ] {
        let response = app.patch_item(id, &body).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&response), [field], "for {body}");
    }
    for quantity in [
        json!(0),
        json!(-2),
        json!("abc"),
        json!(null),
        json!(1.5),
        json!(2_000_000_000),
    ] {
        let response = app.restock(id, quantity.clone()).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&response), ["quantity"], "for {quantity}");
    }
    let malformed = app
        .client
        .send(
            "POST",
            "/api/v1/items",
            Some(&app.admin),
            &[],
            Some(b"{oops".to_vec()),
        )
        .await;
    assert_envelope(&malformed, 422, "VALIDATION_FAILED");
    assert_eq!(app.mysql_stock(id).await, 4);
    assert_eq!(app.redis_stock(id).await, Some(4));
    assert_eq!(app.client.get(&path, None).await.body["price"], 1000);
}

#[actix_web::test]
async fn integral_numbers_are_integers_in_every_body() {
    let app = spawn_app().await;
    let created = app
        .create_item(json!({"name": "Lamp", "price": 5282.0, "stock": 17.0, "max_per_user": 2.0}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        (
            &created.body["price"],
            &created.body["stock"],
            &created.body["max_per_user"]
        ),
        (&json!(5282), &json!(17), &json!(2))
    );
    let id = created.body["id"].as_u64().unwrap();
    let restocked = app.restock(id, json!(3778.0)).await;
    assert_eq!(restocked.status, 200, "{}", restocked.body);
    assert_eq!(restocked.body["stock"], 3795);
    let patched = app.patch_item(id, &json!({"price": 312.0})).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["price"], 312);
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_listing_the_allowed_ones() {
    let app = spawn_app().await;
    let id = app.item_with_stock(1).await;
    for (method, path, allowed) in [
        ("PUT", "/api/v1/items".to_owned(), "GET, POST"),
        ("QUERY", format!("/api/v1/items/{id}"), "GET, PATCH, DELETE"),
        ("PUT", format!("/api/v1/items/{id}"), "GET, PATCH, DELETE"),
        ("GET", format!("/api/v1/items/{id}/restock"), "POST"),
        ("POST", "/metrics".to_owned(), "GET"),
    ] {
        let response = app
            .client
            .send(method, &path, Some(&app.admin), &[], None)
            .await;
        assert_envelope(&response, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
    }
    assert_eq!(app.mysql_stock(id).await, 1);
}

#[actix_web::test]
async fn restock_beyond_the_column_range_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.item_with_stock(1_000_000_000).await;
    for _ in 0..3 {
        assert_eq!(app.restock(id, json!(1_000_000_000)).await.status, 200);
    }
    let refused = app.restock(id, json!(1_000_000_000)).await;
    assert_envelope(&refused, 422, "VALIDATION_FAILED");
    assert_eq!(app.mysql_stock(id).await, 4_000_000_000);
    assert_eq!(app.redis_stock(id).await, Some(4_000_000_000));
}

#[actix_web::test]
async fn a_sale_schedule_is_set_shown_changed_and_sold_by() {
    use inventory::keys::{ENDS_MS, PAY_WINDOW_MS, PRICE, STARTS_MS};
    let app = spawn_app().await;
    let created = app
        .create_item(json!({"name": "Drop", "price": 1500, "stock": 3,
            "sale_starts_at": "2030-01-01T10:00:00+02:00", "sale_ends_at": "2030-01-01T09:00:00.5Z",
            "payment_window_secs": 300}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body["sale_starts_at"], "2030-01-01T08:00:00.000Z");
    assert_eq!(created.body["sale_ends_at"], "2030-01-01T09:00:00.500Z");
    assert_eq!(created.body["payment_window_secs"], 300);
    assert_eq!(app.redis_meta(id, STARTS_MS).await, Some(1_893_484_800_000));
    assert_eq!(app.redis_meta(id, ENDS_MS).await, Some(1_893_488_400_500));
    assert_eq!(app.redis_meta(id, PAY_WINDOW_MS).await, Some(300_000));
    assert_eq!(app.redis_meta(id, PRICE).await, Some(1500));

    // Closing before it opens, against the stored start: refused, nothing changes.
    let backwards = app
        .patch_item(id, &json!({"sale_ends_at": "2030-01-01T07:00:00Z"}))
        .await;
    assert_envelope(&backwards, 422, "VALIDATION_FAILED");
    assert_eq!(error_fields(&backwards), ["sale_ends_at"]);
    assert_eq!(app.redis_meta(id, ENDS_MS).await, Some(1_893_488_400_500));

    let opened = app
        .patch_item(
            id,
            &json!({"sale_starts_at": null, "payment_window_secs": 0, "price": 1700}),
        )
        .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(opened.body["sale_starts_at"], Value::Null);
    assert_eq!(opened.body["payment_window_secs"], 0);
    assert_eq!(app.redis_meta(id, STARTS_MS).await, Some(0));
    assert_eq!(app.redis_meta(id, PAY_WINDOW_MS).await, Some(0));
    assert_eq!(app.redis_meta(id, PRICE).await, Some(1700));

    let too_long = app
        .patch_item(id, &json!({"payment_window_secs": 86_401}))
        .await;
    assert_envelope(&too_long, 422, "VALIDATION_FAILED");
    assert_eq!(error_fields(&too_long), ["payment_window_secs"]);
}

#[actix_web::test]
async fn a_waiting_room_is_set_shown_changed_and_synced_to_redis() {
    use inventory::keys::{PASS_MS, ROOM, ROOM_MAX};
    let app = spawn_app().await;
    let plain = app
        .create_item(json!({"name": "Plain", "price": 1, "stock": 1}))
        .await;
    assert_eq!(plain.body["waiting_room"], false, "{}", plain.body);
    assert_eq!(plain.body["max_admitted"], Value::Null);
    assert_eq!(plain.body["pass_secs"], 120);

    let created = app
        .create_item(json!({"name": "Drop", "price": 1, "stock": 3,
            "waiting_room": true, "max_admitted": 50, "pass_secs": 30}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body["waiting_room"], true);
    assert_eq!(created.body["max_admitted"], 50);
    assert_eq!(created.body["pass_secs"], 30);
    assert_eq!(app.redis_meta(id, ROOM).await, Some(1));
    assert_eq!(app.redis_meta(id, ROOM_MAX).await, Some(50));
    assert_eq!(app.redis_meta(id, PASS_MS).await, Some(30_000));

    for (bad, field) in [
        (json!({"waiting_room": "yes"}), "waiting_room"),
        (json!({"waiting_room": null}), "waiting_room"),
        (json!({"max_admitted": 0}), "max_admitted"),
        (json!({"max_admitted": 100_001}), "max_admitted"),
        (json!({"pass_secs": 9}), "pass_secs"),
        (json!({"pass_secs": null}), "pass_secs"),
    ] {
        let refused = app.patch_item(id, &bad).await;
        assert_envelope(&refused, 422, "VALIDATION_FAILED");
        assert_eq!(error_fields(&refused), [field], "{bad}");
    }
    assert_eq!(app.redis_meta(id, ROOM_MAX).await, Some(50));

    let changed = app
        .patch_item(id, &json!({"max_admitted": null, "pass_secs": 3600}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["max_admitted"], Value::Null);
    assert_eq!(app.redis_meta(id, ROOM_MAX).await, Some(0));
    assert_eq!(app.redis_meta(id, PASS_MS).await, Some(3_600_000));
    let off = app.patch_item(id, &json!({"waiting_room": false})).await;
    assert_eq!(off.body["waiting_room"], false, "{}", off.body);
    assert_eq!(app.redis_meta(id, ROOM).await, Some(0));
}
