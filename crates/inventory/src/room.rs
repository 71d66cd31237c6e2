//! An item's waiting room: who may buy it, in what order. Buyers who join before the
//! sale opens are shuffled at random when it opens, later ones queue in arrival order,
//! and passes are given from the head of the queue while fewer than
//! min(`max_admitted`, units left) buyers hold one. The whole room lives in the item's
//! slot and one script (`scripts/queue.lua`) joins or reads a ticket in one round trip,
//! bringing the room up to date on the way; the purchase script checks and uses the pass
//! in the purchase's own atomic step.

use crate::Error;
use crate::core::Core;
use redis::Script;
use std::sync::LazyLock;

static QUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/queue.lua")));

/// How long a room's keys are kept after its sale closes (or after its last change, for
/// a sale without an end): tickets still read `closed` for that long.
const KEEP_AFTER_SALE_MS: u64 = 24 * 3600 * 1000;

/// Random scores of buyers who join before the start are drawn below this (2^48); later
/// arrivals are queued above it.
const SHUFFLE_RANGE: u64 = 1 << 48;

/// An item's waiting-room settings, part of its sale terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomTerms {
    /// Whether a purchase needs an open pass.
    pub enabled: bool,
    /// How many buyers hold an open pass at most (`None`: as many as units left).
    pub max_admitted: Option<u32>,
    /// How long an admitted buyer has to buy.
    pub pass_secs: u32,
}

impl RoomTerms {
    pub const DEFAULT_PASS_SECS: u32 = 120;
    pub const PASS_SECS: std::ops::RangeInclusive<u32> = 10..=3600;
    pub const MAX_ADMITTED: std::ops::RangeInclusive<u32> = 1..=100_000;
}

impl Default for RoomTerms {
    fn default() -> Self {
        RoomTerms {
            enabled: false,
            max_admitted: None,
            pass_secs: Self::DEFAULT_PASS_SECS,
        }
    }
}

/// Where a buyer stands in an item's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// Joined before the sale opened: no position until it does.
    PreQueue,
    Waiting,
    /// Holds an open pass.
    Admitted,
    /// Bought with the pass.
    Used,
    /// Was admitted and did not buy in time; joining again goes to the back.
    Lapsed,
    /// No unit is left and none is held that could come back.
    SoldOut,
    /// The sale ended.
    Closed,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::PreQueue => "pre_queue",
            TicketState::Waiting => "waiting",
            TicketState::Admitted => "admitted",
            TicketState::Used => "used",
            TicketState::Lapsed => "lapsed",
            TicketState::SoldOut => "sold_out",
            TicketState::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pre_queue" => TicketState::PreQueue,
            "waiting" => TicketState::Waiting,
            "admitted" => TicketState::Admitted,
            "used" => TicketState::Used,
            "lapsed" => TicketState::Lapsed,
            "sold_out" => TicketState::SoldOut,
            "closed" => TicketState::Closed,
            _ => return None,
        })
    }
}

/// A buyer's ticket as they read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub item_id: u64,
    pub state: TicketState,
    /// 1-based among those still waiting (only while waiting).
    pub position: Option<u64>,
    pub ahead: Option<u64>,
    /// How many are waiting (or, before the start, queued for the shuffle).
    pub queue_length: u64,
    pub joined_at_ms: Option<i64>,
    pub admitted_until_ms: Option<i64>,
    /// `ahead`-based, at the pace passes have been given so far; `None` until one has.
    pub estimated_wait_secs: Option<u64>,
}

/// What the room answers a join or a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAnswer {
    Ticket(Ticket),
    /// The buyer has not joined (a read).
    NoTicket,
    /// No such item on sale.
    UnknownItem,
    /// The item sells without a waiting room.
    NoRoom,
}

/// The waiting rooms of every item.
#[derive(Clone)]
pub struct WaitingRoom {
    pub(crate) core: Core,
}

impl WaitingRoom {
    /// Joins `user_id` to the item's room (again, after a lapse); a buyer already in it
    /// gets their ticket unchanged.
    pub async fn join(&self, item_id: u64, user_id: u64) -> Result<RoomAnswer, Error> {
        self.run("join", item_id, user_id).await
    }

    /// The buyer's ticket.
    pub async fn ticket(&self, item_id: u64, user_id: u64) -> Result<RoomAnswer, Error> {
        self.run("read", item_id, user_id).await
    }

    async fn run(&self, op: &str, item_id: u64, user_id: u64) -> Result<RoomAnswer, Error> {
        let keys = self.core.keys(item_id);
        let shuffle_score = uuid::Uuid::new_v4().as_u128() as u64 % SHUFFLE_RANGE;
        let mut conn = self.core.redis.get().await?;
        let reply: Vec<String> = QUEUE
            .prepare_invoke()
            .key(keys.meta())
            .key(keys.stock())
            .key(keys.reserved())
            .key(keys.room())
            .key(keys.room_tickets())
            .key(keys.room_queue())
            .key(keys.room_admitted())
            .arg(op)
            .arg(user_id)
            .arg(shuffle_score)
            .arg(KEEP_AFTER_SALE_MS)
            .invoke_async(&mut conn)
            .await?;
        decode(item_id, &reply)
            .ok_or_else(|| Error::UnexpectedReply(format!("queue script: {reply:?}")))
    }
}

fn decode(item_id: u64, reply: &[String]) -> Option<RoomAnswer> {
    match reply.first()?.as_str() {
        "NO_TICKET" => return Some(RoomAnswer::NoTicket),
        "NOT_FOUND" => return Some(RoomAnswer::UnknownItem),
        "NO_ROOM" => return Some(RoomAnswer::NoRoom),
        "TICKET" if reply.len() == 9 => {}
        _ => return None,
    }
    let number = |i: usize| reply[i].parse::<i64>().ok();
    let state = TicketState::parse(&reply[1])?;
    let [
        joined,
        pass_until,
        rank,
        waiting,
        admitted_total,
        first_admit,
        now,
    ] = [2, 3, 4, 5, 6, 7, 8].map(number);
    let (joined, pass_until, rank, waiting, admitted_total, first_admit, now) = (
        joined?,
        pass_until?,
        rank?,
        waiting?,
        admitted_total?,
        first_admit?,
        now?,
    );
    let position = (state == TicketState::Waiting && rank >= 0).then(|| rank as u64 + 1);
    let at = |ms: i64| (ms > 0).then_some(ms);
    Some(RoomAnswer::Ticket(Ticket {
        item_id,
        state,
        position,
        ahead: position.map(|p| p - 1),
        queue_length: u64::try_from(waiting).ok()?,
        joined_at_ms: at(joined),
        admitted_until_ms: (state == TicketState::Admitted)
            .then(|| at(pass_until))
            .flatten(),
        estimated_wait_secs: position.and_then(|p| estimate(p, admitted_total, first_admit, now)),
    }))
}

/// Seconds until the buyer at `position` is let in, at the pace of passes so far.
fn estimate(position: u64, admitted_total: i64, first_admit_ms: i64, now_ms: i64) -> Option<u64> {
    let elapsed_ms = now_ms
        .checked_sub(first_admit_ms)
        .filter(|ms| *ms >= 1000)?;
    if admitted_total <= 0 || first_admit_ms <= 0 {
        return None;
    }
    let per_sec = admitted_total as f64 * 1000.0 / elapsed_ms as f64;
    Some((position as f64 / per_sec).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_waiting_ticket_gets_its_position_and_an_estimate() {
        let answer = decode(
            7,
            &reply(&[
                "TICKET", "waiting", "1000", "0", "4", "20", "10", "10000", "20000",
            ]),
        );
        let Some(RoomAnswer::Ticket(ticket)) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(ticket.position, Some(5));
        assert_eq!(ticket.ahead, Some(4));
        assert_eq!(ticket.queue_length, 20);
        assert_eq!(ticket.joined_at_ms, Some(1000));
        // 10 passes in 10 s: one a second, so position 5 waits about 5 s.
        assert_eq!(ticket.estimated_wait_secs, Some(5));
        assert_eq!(ticket.admitted_until_ms, None);
    }

    #[test]
    fn no_pace_yet_means_no_estimate() {
        assert_eq!(estimate(3, 0, 0, 5000), None);
        assert_eq!(estimate(3, 5, 4500, 5000), None);
        assert_eq!(estimate(3, 6, 1000, 4000), Some(2));
    }

    #[test]
    fn an_admitted_ticket_carries_its_deadline_and_no_position() {
        let answer = decode(
            7,
            &reply(&[
                "TICKET", "admitted", "1000", "9000", "-1", "3", "1", "2000", "2500",
            ]),
        );
        let Some(RoomAnswer::Ticket(ticket)) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(ticket.state, TicketState::Admitted);
        assert_eq!(ticket.admitted_until_ms, Some(9000));
        assert_eq!(ticket.position, None);
    }

    #[test]
    fn replies_the_script_never_gives_are_refused() {
        for bad in [
            reply(&[]),
            reply(&["TICKET", "waiting"]),
            reply(&["TICKET", "queued", "1", "0", "0", "0", "0", "0", "0"]),
            reply(&["TICKET", "waiting", "x", "0", "0", "0", "0", "0", "0"]),
            reply(&["MAYBE"]),
        ] {
            assert_eq!(decode(1, &bad), None, "{bad:?}");
        }
        for state in [
            "pre_queue",
            "waiting",
            "admitted",
            "used",
            "lapsed",
            "sold_out",
            "closed",
        ] {
            assert_eq!(
                TicketState::parse(state).map(TicketState::as_str),
                Some(state)
            );
        }
    }
}
