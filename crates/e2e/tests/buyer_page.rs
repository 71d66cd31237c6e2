//! The buyer's page the gateway serves at `/` (deploy/web), driven in a real headless
//! chromium through chromedriver's W3C WebDriver HTTP protocol (with the workspace's own
//! HTTP client, no browser-automation crate). One journey on a stack of its own: a
//! wrong password shows the API's message, registering signs in, an item whose sale
//! starts in a few seconds counts down and then sells, a reservation shows its payment
//! deadline, and in a waiting room the buyer who queued before the start sees their
//! place once it opens (the unit held by another buyer's reservation), is admitted when
//! that reservation is cancelled, and buys with the pass, while a later buyer reads
//! `sold_out`. Every wait is bounded and fails
//! with the page's text. `SAVE_SCREENSHOT=1` writes docs/images/buyer-page.png of the
//! waiting ticket. Needs chromium and chromedriver (`ensure_chromium` in
//! scripts/lib/common.sh); skipped under `E2E_BASE_URL`.

use e2e::{LocalStack, api, free_port, workspace_root};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{Client, Response};

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one step of the journey may take before it fails: generous, since the whole
/// suite shares the machine's cores with chromium (a step takes well under a second
/// alone).
const STEP: Duration = Duration::from_secs(30);

/// A binary from `variable`, else the first of `candidates` that exists, else `name`
/// on PATH.
fn binary(variable: &str, candidates: &[&str], name: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| {
            candidates
                .iter()
                .map(PathBuf::from)
                .find(|path| path.exists())
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

/// chromedriver on a port of its own, in a process group of its own: dropping it kills
/// the group (chromedriver and every chromium process it started) and removes the
/// directory holding the browser's profile and both programs' temporary files.
struct Chromedriver {
    child: Child,
    client: Client,
    dir: PathBuf,
}

impl Chromedriver {
    async fn start() -> Chromedriver {
        let program = binary(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromedriver",
        );
        let dir = std::env::temp_dir().join(format!(
            "buyer-page-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("tmp")).expect("chromium's directory");
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let mut child = Command::new(&program)
                .arg(format!("--port={port}"))
                .env("TMPDIR", dir.join("tmp"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "start {} ({e}); install chromium and chromedriver with \
                         `source scripts/lib/common.sh; ensure_chromium`",
                        program.display()
                    )
                });
            let client = Client::new(format!("http://127.0.0.1:{port}"));
            let deadline = Instant::now() + STEP;
            loop {
                if client.try_get_status("/status").await == Some(200) {
                    return Chromedriver { child, client, dir };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    if attempt == ATTEMPTS {
                        let _ = std::fs::remove_dir_all(&dir);
                        panic!("chromedriver exited ({status}) {ATTEMPTS} times");
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("chromedriver never answered /status on port {port}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        unreachable!("every attempt either returns or panics")
    }

    /// A headless chromium session of 1200×900.
    async fn session(&self) -> Browser {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1200,900",
                format!("--user-data-dir={}", self.dir.join("profile").display()),
            ],
        });
        let chromium = binary(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "",
        );
        if chromium.exists() {
            options["binary"] = json!(chromium.display().to_string());
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = self.client.post("/session", None, &capabilities).await;
        let value = webdriver_value("create a session", &created);
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {value}"))
            .to_owned();
        Browser {
            client: self.client.clone(),
            session: format!("/session/{id}"),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test started chromedriver in
            // (process_group(0): its pid is the group's id), which chromium inherits.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A WebDriver answer's `value`; panics with WebDriver's error when it is one.
fn webdriver_value(what: &str, response: &Response) -> Value {
    assert_eq!(
        response.status, 200,
        "WebDriver refused to {what}: {}",
        response.body
    );
    response.body["value"].clone()
}

/// What the page shows of one element (see [`Browser::probe`]).
#[derive(Debug, Clone)]
struct Probe {
    text: String,
    visible: bool,
    disabled: bool,
    data: Value,
}

impl Probe {
    fn data(&self, name: &str) -> Option<&str> {
        self.data[name].as_str()
    }
}

/// One browser session.
struct Browser {
    client: Client,
    /// `/session/<id>`.
    session: String,
}

impl Browser {
    async fn command(&self, what: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let response = self.send(method, path, body).await;
        webdriver_value(what, &response)
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let path = format!("{}{path}", self.session);
        let body = body.map(|body| body.to_string().into_bytes());
        self.client.send(method, &path, None, &[], body).await
    }

    async fn goto(&self, url: &str) {
        self.command("navigate", "POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    async fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command("run a script", "POST", "/execute/sync", Some(body))
            .await
    }

    /// The element with this id as the page shows it, or `None` when there is none.
    async fn probe(&self, id: &str) -> Option<Probe> {
        let value = self
            .execute(
                "const e = document.getElementById(arguments[0]);
                 if (!e) return null;
                 return {
                   text: e.innerText,
                   visible: e.getClientRects().length > 0,
                   disabled: Boolean(e.disabled),
                   data: Object.assign({}, e.dataset),
                 };",
                json!([id]),
            )
            .await;
        (!value.is_null()).then(|| Probe {
            text: value["text"].as_str().unwrap_or_default().to_owned(),
            visible: value["visible"].as_bool().unwrap_or(false),
            disabled: value["disabled"].as_bool().unwrap_or(false),
            data: value["data"].clone(),
        })
    }

    /// Everything the page shows, for failure messages.
    async fn page_text(&self) -> String {
        let text = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                json!([]),
            )
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Polls the element `id` until `done` holds, within `within`; panics saying `what`
    /// with the page's text otherwise.
    async fn wait_for(
        &self,
        what: &str,
        id: &str,
        within: Duration,
        done: impl Fn(&Probe) -> bool,
    ) -> Probe {
        let deadline = Instant::now() + within;
        loop {
            let probe = self.probe(id).await;
            if let Some(probe) = probe.as_ref().filter(|probe| done(probe)) {
                return probe.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {within:?}; #{id} is {probe:?}\n--- the page ---\n{}",
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element `id`, once it is shown.
    async fn element(&self, id: &str) -> String {
        self.wait_for(&format!("#{id} shown"), id, STEP, |p| p.visible)
            .await;
        let found = self
            .command(
                &format!("find #{id}"),
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": format!("#{id}")})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for #{id}: {found}"))
            .to_owned()
    }

    /// Types `text` into the input `id`, replacing what it held.
    async fn fill(&self, id: &str, text: &str) {
        let element = self.element(id).await;
        self.command(
            &format!("clear #{id}"),
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            &format!("type into #{id}"),
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the button `id` once it is shown and enabled.
    async fn click(&self, id: &str) {
        self.wait_for(&format!("#{id} enabled"), id, STEP, |p| {
            p.visible && !p.disabled
        })
        .await;
        let element = self.element(id).await;
        self.command(
            &format!("click #{id}"),
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn scroll_into_view(&self, id: &str) {
        self.execute(
            "document.getElementById(arguments[0]).scrollIntoView({block: 'center'});",
            json!([id]),
        )
        .await;
    }

    /// The visible part of the page as PNG.
    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let shot = self
            .command("take a screenshot", "GET", "/screenshot", None)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("base64 PNG"))
            .expect("a base64 screenshot")
    }

    /// The browser console's messages so far (chromedriver's log endpoint).
    async fn console(&self) -> Vec<String> {
        let entries = self
            .command(
                "read the console",
                "POST",
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| entry["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn quit(&self) {
        let _ = self.send("DELETE", "", None).await;
    }
}

/// An RFC 3339 time `after` from now.
fn from_now(after: Duration) -> String {
    let at = chrono::Utc::now() + chrono::Duration::from_std(after).expect("a short duration");
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Moves the item's opening to `starts_at`, as its admin.
async fn open_at(gateway: &Client, admin: &str, item: u64, starts_at: &str) {
    let moved = gateway
        .send(
            "PATCH",
            &format!("/api/v1/items/{item}"),
            Some(admin),
            &[("Content-Type", "application/json")],
            Some(
                json!({ "sale_starts_at": starts_at })
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
}

/// The buyer's order of `item`, read through the API.
async fn order_of(gateway: &Client, token: &str, item: u64) -> Value {
    let orders = gateway.get("/api/v1/orders", Some(token)).await;
    assert_eq!(orders.status, 200, "{}", orders.body);
    orders.body["data"]
        .as_array()
        .and_then(|orders| orders.iter().find(|order| order["item_id"] == item))
        .cloned()
        .unwrap_or_else(|| panic!("no order of item {item}: {}", orders.body))
}

/// The page's four files: their types, the CSP, and 405 with `Allow` for other methods.
async fn check_the_files(gateway: &Client) {
    for (path, content_type) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/api.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let file = gateway.get(path, None).await;
        assert_eq!(file.status, 200, "GET {path}");
        assert!(
            file.header("content-type")
                .is_some_and(|t| t.starts_with(content_type)),
            "GET {path}: {:?}",
            file.header("content-type")
        );
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert!(file.header("x-request-id").is_some(), "GET {path}");
        let head = gateway.send("HEAD", path, None, &[], None).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        let post = gateway
            .send("POST", path, None, &[], Some(b"{}".to_vec()))
            .await;
        testkit::assert_envelope(&post, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(post.header("allow"), Some("GET, HEAD"), "POST {path}");
    }
    let page = gateway.get("/", None).await;
    let csp = page
        .header("content-security-policy")
        .expect("the page has a Content-Security-Policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = String::from_utf8_lossy(&page.raw);
    assert!(
        html.contains(r#"<script type="module" src="/app.js"></script>"#)
            && !html.contains("style="),
        "the page loads its script from a file and has no inline style"
    );
}

#[actix_web::test]
async fn a_buyer_signs_in_queues_in_the_waiting_room_and_buys_in_a_real_browser() {
    if e2e::needs_own_stack("the buyer's page in a browser") {
        return;
    }
    let started = Instant::now();
    // One after the other: the stack's start blocks its thread at times, and chromedriver's
    // start must not wait for it with its deadline running.
    let chromedriver = Chromedriver::start().await;
    let stack = LocalStack::start().await;
    let gateway = &stack.gateway;
    check_the_files(gateway).await;
    let browser = chromedriver.session().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let password = "buyer-password";

    // An admin puts the items on sale later; buyer B exists before A.
    let admin_email = format!("admin-{tag}@example.com");
    stack.create_admin(&admin_email, "admin-password");
    let admin = api::token_of(&api::login(gateway, &admin_email, "admin-password").await);
    let email_b = format!("buyer-b-{tag}@example.com");
    let token_b =
        api::registered_token(&api::register(gateway, "Buyer B", &email_b, password).await);

    // (a) A wrong password shows the API's own message; registering signs A in.
    browser.goto(&format!("{}/", gateway.base)).await;
    browser.fill("login-email", &email_b).await;
    browser.fill("login-password", "not-the-password").await;
    browser.click("login").await;
    let refused = api::login(gateway, &email_b, "not-the-password").await;
    let message = refused.body["message"].as_str().expect("a message");
    browser
        .wait_for("the API's message in #error", "error", STEP, |p| {
            p.visible && p.text == message
        })
        .await;
    let email_a = format!("buyer-a-{tag}@example.com");
    browser.fill("register-name", "Buyer A").await;
    browser.fill("register-email", &email_a).await;
    browser.fill("register-password", password).await;
    browser.click("register").await;
    browser
        .wait_for("signed in as A", "whoami", STEP, |p| {
            p.visible && p.text.contains(&email_a)
        })
        .await;
    browser
        .wait_for("the registration's notice", "notice", STEP, |p| {
            p.visible && p.text.contains("Registered")
        })
        .await;
    let error = browser.probe("error").await.expect("#error");
    assert!(!error.visible, "an old error stays shown: {error:?}");

    // The items: a waiting room and a plain item opening later, and an item that sells
    // reservations now. The waiting room's one unit is held when it opens: B took it
    // with a pass while it was open and holds it as a reservation, then the admin moved
    // the opening ahead. So A, first in the queue, waits at position 1 until B lets the
    // unit go. The openings are far enough ahead for the page to show them however slow
    // the machine, and moved up once A has joined.
    let later = from_now(Duration::from_secs(600));
    let room = api::create_item(
        gateway,
        &admin,
        &json!({"name": "Limited sneaker", "description": "One pair, one buyer.",
            "price": 12900, "stock": 1, "payment_window_secs": 600,
            "waiting_room": true, "max_admitted": 1, "pass_secs": 60}),
    )
    .await;
    let joined_b = api::join_queue(gateway, &token_b, room).await;
    assert_eq!(joined_b.body["state"], "admitted", "{}", joined_b.body);
    let held = api::purchase(gateway, &token_b, room, 1).await;
    assert_eq!(held.body["order"]["status"], "reserved", "{}", held.body);
    let held = held.body["order"]["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    open_at(gateway, &admin, room, &later).await;
    let plain = api::create_item(
        gateway,
        &admin,
        &json!({"name": "Flash tee", "price": 1999, "stock": 10, "max_per_user": 2,
            "sale_starts_at": later}),
    )
    .await;
    let reservable = api::create_item(
        gateway,
        &admin,
        &json!({"name": "Concert ticket", "price": 4500, "stock": 5,
            "payment_window_secs": 600}),
    )
    .await;
    browser.click("refresh-items").await;

    // (b) The plain item counts down to its start and cannot be bought yet.
    browser
        .wait_for(
            "a countdown to the plain item's start",
            &format!("countdown-{plain}"),
            STEP,
            |p| p.visible && p.text.starts_with("Opens in"),
        )
        .await;
    let buy_plain = format!("buy-{plain}");
    let early = browser.probe(&buy_plain).await.expect("the Buy button");
    assert!(early.disabled, "Buy before the sale opens: {early:?}");

    // (c) A joins the waiting room before the start: pre_queue.
    let ticket = format!("ticket-state-{room}");
    browser.click(&format!("join-{room}")).await;
    let joined = browser
        .wait_for("A's ticket", &ticket, STEP, |p| p.data("state").is_some())
        .await;
    assert_eq!(joined.data("state"), Some("pre_queue"), "{joined:?}");
    let buy_room = format!("buy-{room}");
    let waiting = browser.probe(&buy_room).await.expect("the Buy button");
    assert!(waiting.disabled, "Buy before the pass: {waiting:?}");

    // The admin moves both openings up to a second from now.
    let soon = Duration::from_secs(1);
    for item in [room, plain] {
        open_at(gateway, &admin, item, &from_now(soon)).await;
    }

    // After the start the page shows A's place: first, nobody ahead, the unit held.
    browser
        .wait_for(
            "A waiting at position 1 after the start",
            &ticket,
            soon + STEP,
            |p| match p.data("state") {
                Some("waiting") => true,
                Some("pre_queue") => false,
                other => panic!("A's ticket went {other:?} instead of waiting: {p:?}"),
            },
        )
        .await;
    browser
        .wait_for(
            "A's position on the page",
            &format!("ticket-detail-{room}"),
            STEP,
            |p| p.text.starts_with("Position 1: 0 ahead of you"),
        )
        .await;
    if std::env::var("SAVE_SCREENSHOT").is_ok_and(|v| v == "1") {
        browser.scroll_into_view(&format!("item-{room}")).await;
        let png = browser.screenshot().await;
        let path = workspace_root().join("docs/images/buyer-page.png");
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("docs/images");
        std::fs::write(&path, png).expect("write the screenshot");
        testkit::note(&format!("wrote {}", path.display()));
    }

    let still = browser.probe(&buy_room).await.expect("the Buy button");
    assert!(still.disabled, "Buy while waiting: {still:?}");

    // B cancels: the unit comes back and the page's polling shows A admitted.
    let cancelled = gateway
        .post(
            &format!("/api/v1/orders/{held}/cancel"),
            Some(&token_b),
            &Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let admitted = browser
        .wait_for(
            "A admitted once the unit is back",
            &ticket,
            STEP,
            |p| match p.data("state") {
                Some("admitted") => true,
                Some("waiting") => false,
                other => panic!("A's ticket went {other:?} instead of admitted: {p:?}"),
            },
        )
        .await;
    assert!(admitted.visible, "{admitted:?}");
    browser
        .wait_for("Buy enabled by the pass", &buy_room, STEP, |p| !p.disabled)
        .await;
    browser
        .wait_for(
            "the pass's time left",
            &format!("ticket-detail-{room}"),
            STEP,
            |p| p.text.starts_with("Buy within"),
        )
        .await;
    // A buys with the pass: the reservation is shown with its deadline, the ticket reads
    // used.
    browser.click(&buy_room).await;
    browser
        .wait_for("A's ticket used", &ticket, STEP, |p| {
            p.data("state") == Some("used")
        })
        .await;
    let token_a = api::token_of(&api::login(gateway, &email_a, password).await);
    let order = order_of(gateway, &token_a, room).await;
    let order_id = order["id"].as_str().expect("order id");
    browser
        .wait_for(
            "the waiting-room order's status",
            &format!("order-status-{order_id}"),
            STEP,
            |p| p.visible && p.data("status") == Some("reserved"),
        )
        .await;

    // Once A has paid, nothing can come back: C, joining now, reads sold_out, and buys
    // nothing.
    let paid = api::pay(gateway, e2e::LOCAL_WEBHOOK_SECRET, order_id, &tag, 12900).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let email_c = format!("buyer-c-{tag}@example.com");
    let token_c =
        api::registered_token(&api::register(gateway, "Buyer C", &email_c, password).await);
    let joined_c = api::join_queue(gateway, &token_c, room).await;
    assert_eq!(joined_c.status, 200, "{}", joined_c.body);
    assert_eq!(joined_c.body["state"], "sold_out", "{}", joined_c.body);
    // (Refused as sold out, or as not admitted: either way nothing is sold.)
    let bought_c = api::purchase(gateway, &token_c, room, 1).await;
    assert_eq!(bought_c.status, 409, "{}", bought_c.body);
    assert!(
        ["INSUFFICIENT_STOCK", "NOT_ADMITTED"]
            .contains(&bought_c.body["error_code"].as_str().unwrap_or_default()),
        "{}",
        bought_c.body
    );

    // (b) The plain item is open now (the page reads its new opening): its countdown is
    // gone and Buy works.
    browser.click("refresh-items").await;
    browser
        .wait_for(
            "the countdown gone once the sale opened",
            &format!("countdown-{plain}"),
            STEP,
            |p| !p.visible,
        )
        .await;
    browser.click(&buy_plain).await;
    browser
        .wait_for("the purchase's notice", "notice", STEP, |p| {
            p.text.starts_with("Purchase successful!") && p.text.contains("Flash tee")
        })
        .await;
    let order = order_of(gateway, &token_a, plain).await;
    let order_id = order["id"].as_str().expect("order id");
    browser
        .wait_for(
            "the plain order confirmed once stock-writer has it",
            &format!("order-status-{order_id}"),
            STEP,
            |p| p.visible && p.data("status") == Some("confirmed"),
        )
        .await;

    // A reservation shows its payment deadline.
    browser.click(&format!("buy-{reservable}")).await;
    browser
        .wait_for("the reservation's notice", "notice", STEP, |p| {
            p.text.starts_with("Purchase successful!") && p.text.contains("Concert ticket")
        })
        .await;
    let order = order_of(gateway, &token_a, reservable).await;
    let order_id = order["id"].as_str().expect("order id");
    assert_eq!(order["status"], "reserved", "{order}");
    browser
        .wait_for(
            "the reservation",
            &format!("order-status-{order_id}"),
            STEP,
            |p| p.visible && p.data("status") == Some("reserved"),
        )
        .await;
    let pay_by = format!("order-pay-by-{order_id}");
    let deadline = browser
        .wait_for("the reservation's deadline", &pay_by, STEP, |p| {
            p.visible
                && p.text.contains("pay by")
                && p.text.contains("min")
                && p.text.ends_with("left)")
        })
        .await;
    browser
        .wait_for("the time left to pay counting down", &pay_by, STEP, |p| {
            p.text != deadline.text && p.text.ends_with("left)")
        })
        .await;

    // A reload keeps A signed in (sessionStorage) and reads the ticket back.
    browser.goto(&format!("{}/", gateway.base)).await;
    browser
        .wait_for("still signed in after a reload", "whoami", STEP, |p| {
            p.visible && p.text.contains(&email_a)
        })
        .await;
    browser
        .wait_for("the ticket read back", &ticket, STEP, |p| {
            p.data("state") == Some("used")
        })
        .await;
    let error = browser.probe("error").await.expect("#error");
    assert!(!error.visible, "an error is shown: {error:?}");

    // Nothing the page does breaks its Content-Security-Policy.
    let violations: Vec<String> = browser
        .console()
        .await
        .into_iter()
        .filter(|message| message.contains("Content Security Policy"))
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
    browser.quit().await;
    testkit::note(&format!(
        "the buyer's page journey took {:?}",
        started.elapsed()
    ));
}
