//! The waiting room as purchase-service serves it: joins and ticket reads go to the
//! item's room (inventory's [`WaitingRoom`]), and every answer is counted by what it
//! said (`waiting_room_answers_total{op, answer}`), so that an operator follows a sale's
//! queue from the metrics: how many join, wait, are let in, buy, lapse or are told sold
//! out.

use inventory::WaitingRoom;
use inventory::room::RoomAnswer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    op: &'static str,
    answer: &'static str,
}

/// The rooms of every item, counted.
#[derive(Clone)]
pub struct Room {
    pub room: WaitingRoom,
    pub answers: Family<AnswerLabels, Counter>,
}

impl Room {
    /// Joins the buyer to the item's room (see [`WaitingRoom::join`]).
    pub async fn join(&self, item_id: u64, user_id: u64) -> Result<RoomAnswer, inventory::Error> {
        self.counted("join", self.room.join(item_id, user_id).await)
    }

    /// The buyer's ticket (see [`WaitingRoom::ticket`]).
    pub async fn ticket(&self, item_id: u64, user_id: u64) -> Result<RoomAnswer, inventory::Error> {
        self.counted("read", self.room.ticket(item_id, user_id).await)
    }

    fn counted(
        &self,
        op: &'static str,
        answer: Result<RoomAnswer, inventory::Error>,
    ) -> Result<RoomAnswer, inventory::Error> {
        let label = match &answer {
            Ok(RoomAnswer::Ticket(ticket)) => ticket.state.as_str(),
            Ok(RoomAnswer::NoTicket) => "no_ticket",
            Ok(RoomAnswer::UnknownItem) => "unknown_item",
            Ok(RoomAnswer::NoRoom) => "no_room",
            Err(_) => "error",
        };
        self.answers
            .get_or_create(&AnswerLabels { op, answer: label })
            .inc();
        answer
    }
}
