use crate::helpers::{spawn_app, spawn_app_in};
use catalog_service::seed;
use catalog_service::startup::catalog;
use common::config::Environment;
use inventory::keys::{LIMIT, ON_SALE};
use redis::AsyncCommands;
use testkit::{TestEnv, TestItem};

#[actix_web::test]
async fn warm_up_loads_missing_items_and_never_clobbers_a_redis_figure() {
    let env = TestEnv::new().await;
    for item in [
        TestItem {
            id: Some(1),
            stock: 10,
            ..TestItem::default()
        },
        TestItem {
            id: Some(2),
            stock: 20,
            max_per_user: Some(3),
            ..TestItem::default()
        },
        TestItem {
            id: Some(3),
            stock: 30,
            deleted: true,
            ..TestItem::default()
        },
    ] {
        env.database.insert_item(item).await;
    }
    let mut conn = env.redis.connection().await;
    let keys =
        |id| inventory::ItemKeys::new(&common::redis::Keyspace::new(env.redis.prefix.clone()), id);
    // Redis is ahead of MySQL for item 1 (sales not yet persisted).
    conn.set::<_, _, ()>(keys(1).stock(), 4).await.unwrap();
    conn.hset::<_, _, _, ()>(keys(3).meta(), ON_SALE, 1)
        .await
        .unwrap();

    let app = spawn_app_in(env, |_| {}).await;
    assert_eq!(app.redis_stock(1).await, Some(4));
    assert_eq!(app.redis_stock(2).await, Some(20));
    assert_eq!(app.redis_on_sale(2).await, Some(1));
    let limit: Option<i64> = app
        .env
        .redis
        .connection()
        .await
        .hget(app.keys(2).meta(), LIMIT)
        .await
        .unwrap();
    assert_eq!(limit, Some(3));
    assert_eq!(
        app.redis_on_sale(3).await,
        Some(0),
        "a deleted item must be off sale"
    );
    assert_eq!(
        app.client.get("/api/v1/items/1", None).await.body["stock"],
        4
    );
}

#[actix_web::test]
async fn seeding_is_idempotent_and_refused_in_production() {
    let app = spawn_app().await;
    let catalog = catalog(
        &app.settings,
        db::pool(&app.settings.database.url(), 2).unwrap(),
        common::redis::client(&app.settings.redis).unwrap(),
    );
    assert_eq!(
        seed::seed(&catalog, Environment::Local)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        seed::seed(&catalog, Environment::Local)
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(seed::seed(&catalog, Environment::Production).await.is_err());
    let items = app.client.get("/api/v1/items", None).await;
    assert_eq!(items.body["total"], 2);
    assert_eq!(items.body["data"][0]["name"], "Fashion Gadget");
    assert_eq!(items.body["data"][0]["stock"], 100);
    assert_eq!(items.body["data"][1]["name"], "Super Device");
    assert_eq!(items.body["data"][1]["stock"], 50);
}
