//! proto-docs/openapi.json checked against the running code: every documented operation
//! is exercised through the gateway and every answer (status and body) must match the
//! schema the document gives for it. Runs against a stack of its own, or the one at
//! `E2E_BASE_URL` (see the e2e crate).

use e2e::{Access, Stack, api, workspace_root};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use testkit::Response;

struct Contract {
    doc: Value,
    checked: BTreeSet<(String, String)>,
    /// Operations a stack at `E2E_BASE_URL` gave no access to (a note said so).
    skipped: BTreeSet<(String, String)>,
}

fn escape(segment: &str) -> String {
    segment
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

impl Contract {
    fn load() -> Self {
        let text = std::fs::read_to_string(workspace_root().join("proto-docs/openapi.json"))
            .expect("proto-docs/openapi.json");
        Contract {
            doc: serde_json::from_str(&text).expect("openapi.json is JSON"),
            checked: BTreeSet::new(),
            skipped: BTreeSet::new(),
        }
    }

    /// Follows a `$ref` inside the document.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            value = self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        value
    }

    fn check(&mut self, method: &str, path: &str, response: &Response) {
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        self.checked.insert((method.to_owned(), path.to_owned()));
        let status = response.status.to_string();
        let documented = operation["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{method} {path} answered {status}, which is not documented: {}",
                response.body
            )
        });
        let documented = self.resolve(documented);
        if documented
            .pointer("/content/application~1json/schema")
            .is_none()
        {
            assert!(
                response.raw.is_empty() || response.status == 200,
                "{method} {path} {status}: undocumented body"
            );
            return;
        }
        let errors = self.schema_errors(method, path, &status, &response.body);
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document: {errors:?}\nbody: {}",
            response.body
        );
    }

    /// Where `body` breaks the JSON schema documented for `method path`'s `status`
    /// answer, each as "what, at where". Validated against the document itself so that
    /// its internal `$ref`s resolve.
    fn schema_errors(&self, method: &str, path: &str, status: &str, body: &Value) -> Vec<String> {
        let documented = &self.doc["paths"][path][method]["responses"][status];
        let base = match documented.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference.to_owned(),
            None => format!("#/paths/{}/{method}/responses/{status}", escape(path)),
        };
        let mut root = self.doc.clone();
        root["$ref"] = Value::String(format!("{base}/content/application~1json/schema"));
        let validator = jsonschema::draft202012::new(&root).expect("a valid schema");
        validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }

    fn skipped(&mut self, method: &str, path: &str) {
        self.skipped.insert((method.to_owned(), path.to_owned()));
    }

    fn assert_all_operations_checked(&self) {
        let mut missing = Vec::new();
        for (path, operations) in self.doc["paths"].as_object().expect("paths") {
            for method in operations.as_object().expect("operations").keys() {
                let operation = (method.clone(), path.clone());
                if ["get", "post", "patch", "delete", "put"].contains(&method.as_str())
                    && !self.checked.contains(&operation)
                    && !self.skipped.contains(&operation)
                {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "documented but never exercised: {missing:?}"
        );
    }
}

/// An item id no stack has.
const NO_SUCH_ITEM: u64 = 987_654_321_987;

/// The operational endpoints, at a service's own port (not the gateway's).
const OPERATIONAL: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

#[actix_web::test]
async fn every_documented_operation_answers_as_documented() {
    let stack = Stack::start().await;
    let Some(admin) = stack.admin_token("the contract check").await else {
        return;
    };
    let mut contract = Contract::load();
    let gw = &stack.gateway;

    // auth
    let ann = stack.email("ann");
    let register = stack.register("Ann", &ann, "ann-password").await;
    contract.check("post", "/api/v1/auth/register", &register);
    let taken = stack
        .register("Ann", &ann.replacen("ann", "ANN", 1), "other-password")
        .await;
    assert_eq!(taken.status, 422, "{}", taken.body);
    assert_eq!(
        taken.body["errors"]["email"][0],
        "The email has already been taken."
    );
    contract.check("post", "/api/v1/auth/register", &taken);
    contract.check(
        "post",
        "/api/v1/auth/register",
        &gw.post("/api/v1/auth/register", None, &json!({})).await,
    );
    let login = stack.login(&ann, "ann-password").await;
    contract.check("post", "/api/v1/auth/login", &login);
    let wrong = stack.login(&ann, "nope-nope").await;
    contract.check("post", "/api/v1/auth/login", &wrong);
    let user = login.body["access_token"].as_str().unwrap().to_owned();
    let me = "/api/v1/auth/me";
    contract.check("get", me, &gw.get(me, Some(&user)).await);
    contract.check("post", me, &gw.post(me, Some(&user), &Value::Null).await);
    contract.check("get", me, &gw.get(me, None).await);

    // items
    let lamp = json!({"name": "Lamp", "price": 1500, "stock": 3, "max_per_user": 2});
    let item = api::post_item(gw, &admin, &lamp).await;
    contract.check("post", "/api/v1/items", &item);
    for (token, body) in [
        (Some(&admin), json!({"price": -1})),
        (Some(&user), json!({})),
        (None, json!({})),
    ] {
        let refused = gw
            .post("/api/v1/items", token.map(String::as_str), &body)
            .await;
        contract.check("post", "/api/v1/items", &refused);
    }
    let id = item.body["id"].as_u64().unwrap();
    for per_page in [5, 500] {
        let page = gw
            .get(&format!("/api/v1/items?per_page={per_page}"), None)
            .await;
        contract.check("get", "/api/v1/items", &page);
    }
    for shown in [id.to_string(), NO_SUCH_ITEM.to_string(), "abc".into()] {
        let answer = gw.get(&format!("/api/v1/items/{shown}"), None).await;
        contract.check("get", "/api/v1/items/{id}", &answer);
    }
    let item_path = format!("/api/v1/items/{id}");
    let patch = Some(json!({"description": "bright"}).to_string().into_bytes());
    let patched = gw.send("PATCH", &item_path, Some(&admin), &[], patch).await;
    contract.check("patch", "/api/v1/items/{id}", &patched);
    for quantity in [2, 0] {
        let restock = gw
            .post(
                &format!("{item_path}/restock"),
                Some(&admin),
                &json!({ "quantity": quantity }),
            )
            .await;
        contract.check("post", "/api/v1/items/{id}/restock", &restock);
    }

    // purchases and orders
    let path = format!("/api/v1/items/{id}/purchase");
    let bought = gw.post(&path, Some(&user), &json!({"quantity": 2})).await;
    contract.check("post", "/api/v1/items/{id}/purchase", &bought);
    let nowhere = format!("/api/v1/items/{NO_SUCH_ITEM}/purchase");
    for (path, token, quantity) in [
        (&path, Some(&user), json!(1)),
        (&path, Some(&admin), json!(4)),
        (&path, Some(&user), json!("abc")),
        (&nowhere, Some(&user), json!(1)),
        (&path, None, json!(1)),
    ] {
        let token = token.map(String::as_str);
        let answer = gw.post(path, token, &json!({ "quantity": quantity })).await;
        contract.check("post", "/api/v1/items/{id}/purchase", &answer);
    }
    let order_id = bought.body["order"]["id"].as_str().unwrap().to_owned();
    let orders = gw.get("/api/v1/orders", Some(&user)).await;
    contract.check("get", "/api/v1/orders", &orders);
    for token in [&user, &admin] {
        let order = gw
            .get(&format!("/api/v1/orders/{order_id}"), Some(token))
            .await;
        contract.check("get", "/api/v1/orders/{id}", &order);
    }

    // A reservation: reserved, cancelled, then not reserved any more; and an order
    // that never was a reservation.
    let reservable =
        json!({"name": "Reservable", "price": 700, "stock": 3, "payment_window_secs": 600});
    let reservable = api::post_item(gw, &admin, &reservable).await;
    contract.check("post", "/api/v1/items", &reservable);
    let reservable_id = reservable.body["id"].as_u64().unwrap();
    let reserved = api::purchase(gw, &user, reservable_id, 1).await;
    assert_eq!(
        reserved.body["order"]["status"], "reserved",
        "{}",
        reserved.body
    );
    contract.check("post", "/api/v1/items/{id}/purchase", &reserved);
    let reserved_id = reserved.body["order"]["id"].as_str().unwrap().to_owned();
    contract.check(
        "get",
        "/api/v1/orders/{id}",
        &gw.get(&format!("/api/v1/orders/{reserved_id}"), Some(&user))
            .await,
    );
    for id in [&reserved_id, &reserved_id, &order_id] {
        let cancel = gw
            .post(
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&user),
                &Value::Null,
            )
            .await;
        contract.check("post", "/api/v1/orders/{id}/cancel", &cancel);
    }
    contract.check(
        "post",
        "/api/v1/orders/{id}/cancel",
        &gw.post(
            &format!("/api/v1/orders/{reserved_id}/cancel"),
            Some(&admin),
            &Value::Null,
        )
        .await,
    );
    // The payment webhook: unsigned, then paying a reservation, then a cancelled one.
    let webhook = "/api/v1/payments/webhook";
    contract.check(
        "post",
        webhook,
        &gw.post(webhook, None, &json!({"event": "payment.succeeded"}))
            .await,
    );
    if stack.reaches("the payment webhook", &[e2e::Access::WebhookSecret]) {
        let again = api::purchase(gw, &user, reservable_id, 1).await;
        let again_id = again.body["order"]["id"].as_str().unwrap().to_owned();
        for (order, amount) in [(&again_id, 1), (&again_id, 700), (&reserved_id, 700)] {
            let paid = stack.pay(order, &stack.unique("pi"), amount).await;
            contract.check("post", webhook, &paid);
        }
    }

    // A waiting room: no ticket yet, joined (admitted at once: the sale is open), read;
    // buying without a pass; an item without a room; no such item; no token.
    let roomed = json!({"name": "Queued", "price": 900, "stock": 2, "waiting_room": true});
    let roomed = api::post_item(gw, &admin, &roomed).await;
    contract.check("post", "/api/v1/items", &roomed);
    let queue = format!("/api/v1/items/{}/queue", roomed.body["id"]);
    let queue_of = |id: &dyn std::fmt::Display| format!("/api/v1/items/{id}/queue");
    contract.check(
        "get",
        "/api/v1/items/{id}/queue",
        &gw.get(&queue, Some(&user)).await,
    );
    let unadmitted = api::purchase(gw, &admin, roomed.body["id"].as_u64().unwrap(), 1).await;
    assert_eq!(
        unadmitted.body["error_code"], "NOT_ADMITTED",
        "{}",
        unadmitted.body
    );
    contract.check("post", "/api/v1/items/{id}/purchase", &unadmitted);
    for (path, token) in [
        (&queue, Some(&user)),
        (&queue_of(&id), Some(&user)),
        (&queue_of(&NO_SUCH_ITEM), Some(&user)),
        (&queue, None),
    ] {
        let token = token.map(String::as_str);
        contract.check(
            "post",
            "/api/v1/items/{id}/queue",
            &gw.post(path, token, &Value::Null).await,
        );
    }
    let ticket = gw.get(&queue, Some(&user)).await;
    assert_eq!(ticket.body["state"], "admitted", "{}", ticket.body);
    contract.check("get", "/api/v1/items/{id}/queue", &ticket);

    // Deleted, then already gone.
    for _ in 0..2 {
        let deleted = gw.send("DELETE", &item_path, Some(&admin), &[], None).await;
        contract.check("delete", "/api/v1/items/{id}", &deleted);
    }

    let refreshed = gw
        .post("/api/v1/auth/refresh", Some(&user), &Value::Null)
        .await;
    contract.check("post", "/api/v1/auth/refresh", &refreshed);
    let fresh = refreshed.body["access_token"].as_str().unwrap().to_owned();
    // Logged out, then already revoked.
    for _ in 0..2 {
        let logout = gw
            .post("/api/v1/auth/logout", Some(&fresh), &Value::Null)
            .await;
        contract.check("post", "/api/v1/auth/logout", &logout);
    }

    // Operational endpoints, straight at a service.
    let check = "/healthz, /readyz and /metrics at a service's own port";
    if stack.reaches(check, &[Access::Service("catalog-service")]) {
        let service = stack.service("catalog-service");
        for path in OPERATIONAL {
            contract.check("get", path, &service.get(path, None).await);
        }
    } else {
        for path in OPERATIONAL {
            contract.skipped("get", path);
        }
    }

    contract.assert_all_operations_checked();
}

/// The methods the document gives `path`, upper-case.
fn documented_methods(item: &Value) -> BTreeSet<String> {
    item.as_object()
        .expect("path item")
        .keys()
        .filter(|key| ["get", "post", "patch", "delete", "put"].contains(&key.as_str()))
        .map(|method| method.to_uppercase())
        .collect()
}

#[actix_web::test]
async fn other_methods_on_documented_paths_are_405_with_the_documented_methods_in_allow() {
    let stack = Stack::start().await;
    let doc = Contract::load().doc;
    let check = "405s at a service's own port (/healthz, /readyz, /metrics)";
    let service = stack
        .reaches(check, &[Access::Service("catalog-service")])
        .then(|| stack.service("catalog-service"));
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let documented = documented_methods(item);
        let concrete = path.replace("{id}", "1");
        // Paths with their own `servers` are each service's own, not the gateway's.
        let served_by_gateway = item.get("servers").is_none();
        let client = if served_by_gateway {
            &stack.gateway
        } else {
            let at_gateway = stack.gateway.get(&concrete, None).await;
            assert_eq!(
                at_gateway.status, 404,
                "{path} is not routed by the gateway"
            );
            match &service {
                Some(service) => service,
                None => continue,
            }
        };
        // TRACE never reaches a service behind nginx; the others are the services' own.
        for method in ["TRACE", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"] {
            if documented.contains(method) {
                continue;
            }
            let response = client.send(method, &concrete, None, &[], None).await;
            assert_eq!(response.status, 405, "{method} {path}: {}", response.body);
            assert_eq!(
                response.body["error_code"], "METHOD_NOT_ALLOWED",
                "{method} {path}"
            );
            assert!(response.body["message"].is_string());
            let allowed: BTreeSet<String> = response
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| m != "HEAD")
                .collect();
            assert_eq!(allowed, documented, "{method} {path}: Allow");
        }
    }
    for method in ["TRACE", "PUT", "GET"] {
        let unknown = stack
            .gateway
            .send(method, "/api/v1/nowhere", None, &[], None)
            .await;
        assert_eq!(unknown.status, 404, "{method} on an unknown path");
        assert_eq!(unknown.body["error_code"], "NOT_FOUND");
    }
}

/// The answer the gateway makes itself for a purchase, cancel or payment webhook it sent
/// to purchase-service, which then failed or never answered (503 `OUTCOME_UNKNOWN`
/// without an order id, deploy/nginx/gateway.conf.template), is among the documented
/// 503s of each; crates/e2e/tests/gateway_edge.rs makes the gateway give it.
#[test]
fn the_gateways_own_outcome_unknown_is_documented_on_each_write_it_answers() {
    let template =
        std::fs::read_to_string(workspace_root().join("deploy/nginx/gateway.conf.template"))
            .expect("the gateway template");
    let body = template
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "location = /_gateway/outcome-unknown {")
        .find_map(|line| line.strip_prefix("return 503 '")?.strip_suffix("';"))
        .expect("the gateway's OUTCOME_UNKNOWN answer");
    let body: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(body["error_code"], "OUTCOME_UNKNOWN");
    let contract = Contract::load();
    for path in [
        "/api/v1/items/{id}/purchase",
        "/api/v1/orders/{id}/cancel",
        "/api/v1/payments/webhook",
    ] {
        let errors = contract.schema_errors("post", path, "503", &body);
        assert!(
            errors.is_empty(),
            "POST {path} 503: {errors:?}\nbody: {body}"
        );
        let documented = &contract.doc["paths"][path]["post"]["responses"]["503"];
        let described = contract.resolve(documented)["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            described.contains("From the gateway, `OUTCOME_UNKNOWN` without `order_id`"),
            "POST {path}: {described}"
        );
    }
}

#[test]
fn the_stock_event_schema_matches_the_events_the_code_publishes() {
    let text = std::fs::read_to_string(workspace_root().join("proto-docs/stock-event.schema.json"))
        .expect("event schema");
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let mut event = events::StockEvent {
        version: events::EVENT_VERSION,
        order_id: "01a20da8-76d9-7059-99fc-52b963665b74".into(),
        user_id: 7,
        item_id: 1,
        quantity: 2,
        purchased_at_ms: 1_795_524_274_009,
        request_id: Some("trace-1".into()),
        ..events::StockEvent::default()
    };
    for request_id in [Some("trace-1".to_owned()), None] {
        event.request_id = request_id;
        let json: Value = serde_json::from_str(&event.to_json()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
    let expired = events::StockEvent {
        kind: events::EventType::Expired,
        pay_by_ms: Some(1_795_524_574_009),
        amount: Some(1500),
        at_ms: Some(1_795_524_574_100),
        ..event.clone()
    };
    let json: Value = serde_json::from_str(&expired.to_json()).unwrap();
    assert!(validator.is_valid(&json), "{json}");
    // A batch message is an array of such events.
    let batch: Value =
        serde_json::from_str(&events::encode_message(&[event.clone(), expired.clone()])).unwrap();
    let batch = batch.as_array().expect("a batch is an array");
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(|e| validator.is_valid(e)), "{batch:?}");
    let mut undated = json.clone();
    undated.as_object_mut().unwrap().remove("at_ms");
    assert!(!validator.is_valid(&undated), "a release needs at_ms");
    let mut bad: Value = serde_json::from_str(&event.to_json()).unwrap();
    bad["quantity"] = json!(0);
    assert!(
        !validator.is_valid(&bad),
        "the schema must refuse what the consumer refuses"
    );
}

#[actix_web::test]
async fn an_oversize_body_is_413_as_documented_on_every_operation_through_the_gateway() {
    let stack = Stack::start().await;
    let mut contract = Contract::load();
    let operations: Vec<(String, String)> = contract.doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| item.get("servers").is_none())
        .flat_map(|(path, item)| {
            documented_methods(item)
                .into_iter()
                .map(move |method| (path.clone(), method))
        })
        .collect();
    assert!(operations.len() > 10, "{operations:?}");
    // Over the gateway's 16 KiB, whatever the method: the gateway answers before routing.
    let body = vec![b' '; 20 * 1024];
    for (path, method) in operations {
        let concrete = path.replace("{id}", "1");
        let response = stack
            .gateway
            .send(&method, &concrete, None, &[], Some(body.clone()))
            .await;
        assert_eq!(response.status, 413, "{method} {path}: {}", response.body);
        contract.check(&method.to_lowercase(), &path, &response);
    }
}
