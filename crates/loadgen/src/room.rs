//! The waiting room's load: buyers who join an item's waiting room, then each watch their
//! ticket (a read every `poll_every` at most, as the buyer's page does) and buy the moment
//! it says `admitted`. Two calls, so that the caller can open the sale in between:
//! [`RoomBuyers::join`] and [`RoomBuyers::watch`]. What comes back is per buyer (when it
//! was admitted and until when, whether it bought, when it was told `sold_out`), so the
//! caller judges the room's fairness and how soon the late buyers learned the truth.

use crate::tokens::sign_tokens;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A crowd of buyers of one waiting-room item, each with its own token.
pub struct RoomBuyers {
    url: String,
    item: u64,
    first_user: u64,
    tokens: Vec<String>,
    /// Connections.
    pub concurrency: usize,
    /// The shortest time between two reads of one buyer's ticket.
    pub poll_every: Duration,
    /// The watch ends by then whatever the tickets say.
    pub limit: Duration,
    /// What every time in the answers counts from.
    epoch: Instant,
}

/// The joins, in the order they were answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    /// Buyer indices, first answered first.
    pub order: Vec<usize>,
    pub seconds: f64,
    /// Answers per HTTP status (0: none came).
    pub statuses: BTreeMap<u16, u64>,
    /// Tickets per state, as the joins answered them.
    pub states: BTreeMap<String, u64>,
}

/// One buyer's watch; times in ms since the crowd was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuyerWatch {
    /// `admitted_until` of the first ticket read `admitted`.
    pub admitted_until: Option<String>,
    /// When the purchase answered 200.
    pub bought_at_ms: Option<f64>,
    /// The last state read, and when the read was answered.
    pub last_state: Option<String>,
    pub last_read_at_ms: f64,
    /// When the last read that did not say `sold_out` (nor `used`) was sent.
    pub last_hopeful_read_sent_ms: Option<f64>,
}

/// The watch, from the opening of the sale until every buyer was done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watched {
    pub buyers: Vec<BuyerWatch>,
    pub started_ms: f64,
    pub seconds: f64,
    pub ticket_reads: u64,
    pub purchases: u64,
    /// Answers per HTTP status, reads and purchases together (0: none came).
    pub statuses: BTreeMap<u16, u64>,
    /// Purchase refusals per `error_code`.
    pub purchase_refusals: BTreeMap<String, u64>,
}

impl RoomBuyers {
    /// `buyers` buyers (user ids `first_user..`) of `item` at `url`, tokens signed with
    /// the stack's private key.
    pub fn new(
        url: impl Into<String>,
        item: u64,
        buyers: u64,
        first_user: u64,
        private_key: &Path,
    ) -> anyhow::Result<Self> {
        Ok(RoomBuyers {
            url: url.into(),
            item,
            first_user,
            tokens: sign_tokens(private_key, first_user, buyers)?,
            concurrency: 256,
            poll_every: Duration::from_secs(1),
            limit: Duration::from_secs(120),
            epoch: Instant::now(),
        })
    }

    /// The buyer of `user_id`, if it is one of these.
    pub fn index_of(&self, user_id: u64) -> Option<usize> {
        let index = usize::try_from(user_id.checked_sub(self.first_user)?).ok()?;
        (index < self.tokens.len()).then_some(index)
    }

    fn ms(&self) -> f64 {
        self.ms_at(Instant::now())
    }

    /// `at` as the answers count time: ms since the crowd was made.
    pub fn ms_at(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0
    }

    fn queue_url(&self) -> String {
        format!("{}/api/v1/items/{}/queue", self.url, self.item)
    }

    /// Every buyer joins once, `concurrency` at a time (blocks the caller).
    pub fn join(&self) -> anyhow::Result<Joined> {
        let started = Instant::now();
        let next = Rc::new(RefCell::new(0..self.tokens.len()));
        let joined = Rc::new(RefCell::new(Joined {
            order: Vec::with_capacity(self.tokens.len()),
            seconds: 0.0,
            statuses: BTreeMap::new(),
            states: BTreeMap::new(),
        }));
        actix_web::rt::System::new().block_on(async {
            let client = self.client();
            let workers = (0..self.concurrency).map(|_| {
                let (next, joined, client) = (next.clone(), joined.clone(), client.clone());
                async move {
                    loop {
                        let Some(buyer) = next.borrow_mut().next() else {
                            break;
                        };
                        let (status, body) = self.send(&client, Call::Join, buyer).await;
                        let mut joined = joined.borrow_mut();
                        *joined.statuses.entry(status).or_default() += 1;
                        if status == 200 {
                            joined.order.push(buyer);
                            let state = body["state"].as_str().unwrap_or("?").to_owned();
                            *joined.states.entry(state).or_default() += 1;
                        }
                    }
                }
            });
            futures_util::future::join_all(workers).await;
        });
        let mut joined = Rc::try_unwrap(joined)
            .map_err(|_| anyhow::anyhow!("a join worker outlived the joins"))?
            .into_inner();
        joined.seconds = started.elapsed().as_secs_f64();
        Ok(joined)
    }

    /// Every buyer reads its ticket until it says `used`, `sold_out`, `closed` or
    /// `lapsed`, buying when it says `admitted` (blocks the caller).
    pub fn watch(&self) -> anyhow::Result<Watched> {
        let started = Instant::now();
        let started_ms = self.ms();
        let due: VecDeque<(usize, Instant)> =
            (0..self.tokens.len()).map(|b| (b, started)).collect();
        let state = Rc::new(RefCell::new(WatchState {
            due,
            busy: 0,
            watched: Watched {
                buyers: vec![BuyerWatch::default(); self.tokens.len()],
                started_ms,
                seconds: 0.0,
                ticket_reads: 0,
                purchases: 0,
                statuses: BTreeMap::new(),
                purchase_refusals: BTreeMap::new(),
            },
        }));
        let deadline = started + self.limit;
        actix_web::rt::System::new().block_on(async {
            let client = self.client();
            let workers = (0..self.concurrency).map(|_| {
                let (state, client) = (state.clone(), client.clone());
                async move {
                    while Instant::now() < deadline {
                        let next = {
                            let mut state = state.borrow_mut();
                            let next = state.due.pop_front();
                            state.busy += usize::from(next.is_some());
                            next
                        };
                        let Some((buyer, at)) = next else {
                            if state.borrow().busy == 0 {
                                break;
                            }
                            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        };
                        let wait = at.saturating_duration_since(Instant::now());
                        if !wait.is_zero() {
                            actix_web::rt::time::sleep(wait).await;
                        }
                        let again = self.watch_once(&client, &state, buyer).await;
                        let mut state = state.borrow_mut();
                        state.busy -= 1;
                        if again {
                            state
                                .due
                                .push_back((buyer, Instant::now() + self.poll_every));
                        }
                    }
                }
            });
            futures_util::future::join_all(workers).await;
        });
        let mut watched = Rc::try_unwrap(state)
            .map_err(|_| anyhow::anyhow!("a watch worker outlived the watch"))?
            .into_inner()
            .watched;
        watched.seconds = started.elapsed().as_secs_f64();
        Ok(watched)
    }

    /// One read of `buyer`'s ticket, and its purchase if admitted; whether to read again.
    async fn watch_once(
        &self,
        client: &awc::Client,
        state: &RefCell<WatchState>,
        buyer: usize,
    ) -> bool {
        let sent_ms = self.ms();
        let (status, ticket) = self.send(client, Call::Read, buyer).await;
        let read_ms = self.ms();
        let ticket_state = ticket["state"].as_str().unwrap_or_default().to_owned();
        {
            let mut state = state.borrow_mut();
            let watched = &mut state.watched;
            watched.ticket_reads += 1;
            *watched.statuses.entry(status).or_default() += 1;
            let log = &mut watched.buyers[buyer];
            if status == 200 {
                log.last_state = Some(ticket_state.clone());
                log.last_read_at_ms = read_ms;
                if !matches!(ticket_state.as_str(), "sold_out" | "used") {
                    log.last_hopeful_read_sent_ms = Some(sent_ms);
                }
                if ticket_state == "admitted" && log.admitted_until.is_none() {
                    log.admitted_until = ticket["admitted_until"].as_str().map(str::to_owned);
                }
            }
        }
        match (status, ticket_state.as_str()) {
            (200, "admitted") => {
                let (status, body) = self.send(client, Call::Buy, buyer).await;
                let bought_ms = self.ms();
                let mut state = state.borrow_mut();
                let watched = &mut state.watched;
                watched.purchases += 1;
                *watched.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    watched.buyers[buyer].bought_at_ms = Some(bought_ms);
                    return false;
                }
                let code = body["error_code"]
                    .as_str()
                    .map_or_else(|| format!("HTTP_{status}"), str::to_owned);
                *watched.purchase_refusals.entry(code).or_default() += 1;
                true
            }
            (200, "pre_queue" | "waiting") => true,
            (200, _) => false,
            _ => true,
        }
    }

    fn client(&self) -> awc::Client {
        awc::Client::builder()
            .connector(awc::Connector::new().limit(self.concurrency))
            .timeout(Duration::from_secs(30))
            .finish()
    }

    /// `call` for `buyer`: the status (0: no answer) and the body.
    async fn send(&self, client: &awc::Client, call: Call, buyer: usize) -> (u16, Value) {
        let authorization = format!("Bearer {}", self.tokens[buyer]);
        let request = match call {
            Call::Read => client.get(self.queue_url()),
            Call::Join => client.post(self.queue_url()),
            Call::Buy => client
                .post(format!("{}/api/v1/items/{}/purchase", self.url, self.item))
                .insert_header(("Content-Type", "application/json")),
        }
        .insert_header(("Authorization", authorization));
        let sent = match call {
            Call::Buy => request.send_body(r#"{"quantity":1}"#).await,
            Call::Join | Call::Read => request.send().await,
        };
        match sent {
            Ok(mut response) => {
                let body = response.body().limit(64 * 1024).await.unwrap_or_default();
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                (response.status().as_u16(), value)
            }
            Err(_) => (0, Value::Null),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Join,
    Read,
    Buy,
}

struct WatchState {
    /// Buyers still watching, each with when its next read is due.
    due: VecDeque<(usize, Instant)>,
    /// Buyers taken off `due` by a worker and not yet put back or done.
    busy: usize,
    watched: Watched,
}
