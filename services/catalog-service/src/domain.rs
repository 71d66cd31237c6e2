//! Catalog input parsed into types that only hold valid values: a new item, a partial
//! update and a restock quantity. Handlers pass these on; queries never see raw JSON.

use chrono::{DateTime, Utc};
use common::ValidationErrors;
use common::input::JsonObject;
use inventory::room::RoomTerms;

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Prices are integer minor units (cents); this bound keeps sums far from overflow.
pub const MAX_PRICE: i64 = 1_000_000_000_000;
/// Stock is an `INT UNSIGNED` column; a bound well inside it leaves room for restocks.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// The most units one restock adds: the stock bound.
const MAX_RESTOCK: u32 = MAX_STOCK as u32;
pub const MAX_PER_USER: i64 = 1_000_000;
/// The longest a buyer may be given to pay for a reservation: a day.
pub const MAX_PAYMENT_WINDOW_SECS: i64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    /// See [`common::input::display_name`].
    pub fn parse(raw: &str) -> Result<Self, String> {
        common::input::display_name(raw, MAX_NAME_CHARS).map(|name| ItemName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn description(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => Err(format!(
            "The description may not be greater than {MAX_DESCRIPTION_CHARS} characters."
        )),
        Some(text) => Ok(Some(text.to_owned())),
        None => Ok(None),
    }
}

fn bounded(field: &str, value: i64, min: i64, max: i64) -> Result<i64, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("The {field} must be between {min} and {max}."))
    }
}

fn price(value: i64) -> Result<u64, String> {
    bounded("price", value, 0, MAX_PRICE).map(|v| v as u64)
}

fn stock(value: i64) -> Result<u32, String> {
    bounded("stock", value, 0, MAX_STOCK).map(|v| v as u32)
}

fn max_per_user(value: Option<i64>) -> Result<Option<u32>, String> {
    value
        .map(|v| bounded("max_per_user", v, 1, MAX_PER_USER).map(|v| v as u32))
        .transpose()
}

/// When a sale opens or closes: an RFC 3339 time, or null for no bound.
/// Within 1970-2999 (UTC): what MySQL's DATETIME and the Redis clock both hold.
fn sale_time(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    raw.map(|text| {
        let at = DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| format!("The {field} must be an RFC 3339 date-time or null."))?;
        if (1970..3000).contains(&chrono::Datelike::year(&at)) {
            Ok(at)
        } else {
            Err(format!("The {field} must be between 1970 and 2999."))
        }
    })
    .transpose()
}

fn payment_window(value: Option<i64>) -> Result<Option<u32>, String> {
    value
        .map(|v| bounded("payment_window_secs", v, 0, MAX_PAYMENT_WINDOW_SECS).map(|v| v as u32))
        .transpose()
}

fn max_admitted(value: Option<i64>) -> Result<Option<u32>, String> {
    let range = RoomTerms::MAX_ADMITTED;
    value
        .map(|v| {
            bounded(
                "max_admitted",
                v,
                (*range.start()).into(),
                (*range.end()).into(),
            )
            .map(|v| v as u32)
        })
        .transpose()
}

fn pass_secs(value: i64) -> Result<u32, String> {
    let range = RoomTerms::PASS_SECS;
    bounded(
        "pass_secs",
        value,
        (*range.start()).into(),
        (*range.end()).into(),
    )
    .map(|v| v as u32)
}

/// A sale that closes must close after it opens (the message is `sale_ends_at`'s).
pub fn check_window(
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<(), String> {
    match (starts_at, ends_at) {
        (Some(starts), Some(ends)) if ends <= starts => {
            Err("The sale_ends_at must be after sale_starts_at.".into())
        }
        _ => Ok(()),
    }
}

/// When an item sells, whether its buyers get a payment step and whether they queue in a
/// waiting room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleSchedule {
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
    pub payment_window_secs: Option<u32>,
    pub room: RoomTerms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub name: ItemName,
    pub description: Option<String>,
    pub price: u64,
    pub stock: u32,
    pub max_per_user: Option<u32>,
    pub schedule: SaleSchedule,
}

impl NewItem {
    pub const FIELDS: [&str; 11] = [
        "name",
        "description",
        "price",
        "stock",
        "max_per_user",
        "sale_starts_at",
        "sale_ends_at",
        "payment_window_secs",
        "waiting_room",
        "max_admitted",
        "pass_secs",
    ];

    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = body.unknown_fields(&Self::FIELDS);
        let name = errors.check("name", body.string("name").and_then(ItemName::parse));
        let description = errors.check(
            "description",
            body.optional_string("description").and_then(description),
        );
        let price = errors.check("price", body.integer("price").and_then(price));
        let stock = errors.check("stock", body.integer("stock").and_then(stock));
        let max_per_user = errors.check(
            "max_per_user",
            body.optional_integer("max_per_user").and_then(max_per_user),
        );
        let sale_starts_at = errors.check(
            "sale_starts_at",
            body.optional_string("sale_starts_at")
                .and_then(|raw| sale_time("sale_starts_at", raw)),
        );
        let sale_ends_at = errors.check(
            "sale_ends_at",
            body.optional_string("sale_ends_at")
                .and_then(|raw| sale_time("sale_ends_at", raw)),
        );
        let payment_window_secs = errors.check(
            "payment_window_secs",
            body.optional_integer("payment_window_secs")
                .and_then(payment_window),
        );
        let room = RoomFields::parse(body, &mut errors).map(RoomFields::terms);
        let schedule = match (sale_starts_at, sale_ends_at, payment_window_secs, room) {
            (Some(sale_starts_at), Some(sale_ends_at), Some(payment_window_secs), Some(room)) => {
                errors.check("sale_ends_at", check_window(sale_starts_at, sale_ends_at));
                Some(SaleSchedule {
                    sale_starts_at,
                    sale_ends_at,
                    payment_window_secs,
                    room,
                })
            }
            _ => None,
        };
        match (name, description, price, stock, max_per_user, schedule) {
            (
                Some(name),
                Some(description),
                Some(price),
                Some(stock),
                Some(max_per_user),
                Some(schedule),
            ) if errors.is_empty() => Ok(NewItem {
                name,
                description,
                price,
                stock,
                max_per_user,
                schedule,
            }),
            _ => Err(errors),
        }
    }
}

/// The waiting-room fields a body sends, each `None` when absent: one parse for a new
/// item and for a change. `max_admitted: null` lifts the cap; the other two are never null.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomFields {
    pub waiting_room: Option<bool>,
    pub max_admitted: Option<Option<u32>>,
    pub pass_secs: Option<u32>,
}

impl RoomFields {
    fn parse(body: &JsonObject, errors: &mut ValidationErrors) -> Option<Self> {
        let waiting_room = errors.check("waiting_room", body.optional_boolean("waiting_room"));
        let max_admitted = errors.check(
            "max_admitted",
            body.contains("max_admitted")
                .then(|| body.optional_integer("max_admitted").and_then(max_admitted))
                .transpose(),
        );
        let pass_secs = errors.check(
            "pass_secs",
            body.contains("pass_secs")
                .then(|| body.integer("pass_secs").and_then(pass_secs))
                .transpose(),
        );
        Some(RoomFields {
            waiting_room: waiting_room?,
            max_admitted: max_admitted?,
            pass_secs: pass_secs?,
        })
    }

    fn is_empty(&self) -> bool {
        *self == RoomFields::default()
    }

    /// A new item's room: none unless `waiting_room` is true; `pass_secs` defaults.
    fn terms(self) -> RoomTerms {
        RoomTerms {
            enabled: self.waiting_room.unwrap_or(false),
            max_admitted: self.max_admitted.flatten(),
            pass_secs: self.pass_secs.unwrap_or(RoomTerms::DEFAULT_PASS_SECS),
        }
    }
}

/// A partial update. `Some(None)` clears a nullable field. Stock is not here: it only
/// changes through restock and purchases, so Redis and MySQL stay in step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemChanges {
    pub name: Option<ItemName>,
    pub description: Option<Option<String>>,
    pub price: Option<u64>,
    pub max_per_user: Option<Option<u32>>,
    pub sale_starts_at: Option<Option<DateTime<Utc>>>,
    pub sale_ends_at: Option<Option<DateTime<Utc>>>,
    pub payment_window_secs: Option<Option<u32>>,
    pub room: RoomFields,
}

impl ItemChanges {
    /// `stock` is known so that it is refused with the way to change it.
    pub const FIELDS: [&str; 11] = [
        "name",
        "description",
        "price",
        "max_per_user",
        "sale_starts_at",
        "sale_ends_at",
        "payment_window_secs",
        "waiting_room",
        "max_admitted",
        "pass_secs",
        "stock",
    ];

    /// Whether the change touches what Redis sells by (price, schedule, waiting room).
    pub fn changes_terms(&self) -> bool {
        self.price.is_some()
            || self.sale_starts_at.is_some()
            || self.sale_ends_at.is_some()
            || self.payment_window_secs.is_some()
            || !self.room.is_empty()
    }

    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = body.unknown_fields(&Self::FIELDS);
        let mut changes = ItemChanges::default();
        if body.contains("name") {
            changes.name = errors.check("name", body.string("name").and_then(ItemName::parse));
        }
        if body.contains("description") {
            changes.description = errors.check(
                "description",
                body.optional_string("description").and_then(description),
            );
        }
        if body.contains("price") {
            changes.price = errors.check("price", body.integer("price").and_then(price));
        }
        if body.contains("max_per_user") {
            changes.max_per_user = errors.check(
                "max_per_user",
                body.optional_integer("max_per_user").and_then(max_per_user),
            );
        }
        for field in ["sale_starts_at", "sale_ends_at"] {
            if body.contains(field) {
                let at = errors.check(
                    field,
                    body.optional_string(field)
                        .and_then(|raw| sale_time(field, raw)),
                );
                if field == "sale_starts_at" {
                    changes.sale_starts_at = at;
                } else {
                    changes.sale_ends_at = at;
                }
            }
        }
        if body.contains("payment_window_secs") {
            changes.payment_window_secs = errors.check(
                "payment_window_secs",
                body.optional_integer("payment_window_secs")
                    .and_then(payment_window),
            );
        }
        if let Some(room) = RoomFields::parse(body, &mut errors) {
            changes.room = room;
        }
        if body.contains("stock") {
            errors.add(
                "stock",
                "The stock cannot be set directly; use POST /items/{id}/restock.",
            );
        }
        if errors.is_empty() && changes == ItemChanges::default() {
            errors.add(
                "body",
                "Send at least one of name, description, price, max_per_user, sale_starts_at, sale_ends_at, payment_window_secs, waiting_room, max_admitted, pass_secs.",
            );
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

/// Units to add to an item's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestockQuantity(u32);

impl RestockQuantity {
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        body.quantity_only(MAX_RESTOCK).map(RestockQuantity)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    fn body(json: &str) -> JsonObject {
        JsonObject::parse(json.as_bytes()).unwrap()
    }

    fn fields(errors: ValidationErrors) -> Vec<String> {
        errors.fields().map(str::to_owned).collect()
    }

    #[test]
    fn a_full_item_parses() {
        let item = NewItem::parse(&body(
            r#"{"name": " Lamp ", "description": "bright", "price": 1999, "stock": 5, "max_per_user": 2}"#,
        ))
        .unwrap();
        assert_eq!(item.name.as_str(), "Lamp");
        assert_eq!(
            (item.price, item.stock, item.max_per_user),
            (1999, 5, Some(2))
        );
    }

    #[test]
    fn a_sale_schedule_parses_and_must_close_after_it_opens() {
        let item = NewItem::parse(&body(
            r#"{"name": "Lamp", "price": 1, "stock": 1, "sale_starts_at": "2026-12-01T10:00:00+01:00", "sale_ends_at": "2026-12-01T10:00:01Z", "payment_window_secs": 600}"#,
        ))
        .unwrap();
        assert_eq!(
            item.schedule.sale_starts_at.map(|at| at.to_rfc3339()),
            Some("2026-12-01T09:00:00+00:00".into())
        );
        assert_eq!(item.schedule.payment_window_secs, Some(600));
        let backwards = NewItem::parse(&body(
            r#"{"name": "Lamp", "price": 1, "stock": 1, "sale_starts_at": "2026-12-01T10:00:00Z", "sale_ends_at": "2026-12-01T10:00:00Z"}"#,
        ))
        .unwrap_err();
        assert_eq!(fields(backwards), ["sale_ends_at"]);
        let bad = NewItem::parse(&body(
            r#"{"name": "Lamp", "price": 1, "stock": 1, "sale_starts_at": "tomorrow", "payment_window_secs": 86401}"#,
        ))
        .unwrap_err();
        assert_eq!(fields(bad), ["payment_window_secs", "sale_starts_at"]);
        let ancient = NewItem::parse(&body(
            r#"{"name": "Lamp", "price": 1, "stock": 1, "sale_ends_at": "0001-01-01T00:00:00Z"}"#,
        ))
        .unwrap_err();
        assert_eq!(fields(ancient), ["sale_ends_at"]);
        let cleared = ItemChanges::parse(&body(r#"{"sale_ends_at": null}"#)).unwrap();
        assert_eq!(cleared.sale_ends_at, Some(None));
        assert!(cleared.changes_terms());
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = NewItem::parse(&body(
            r#"{"name": "", "description": 3, "price": -1, "stock": 1.5, "max_per_user": 0}"#,
        ))
        .unwrap_err();
        assert_eq!(
            fields(errors),
            ["description", "max_per_user", "name", "price", "stock"]
        );
        let missing = NewItem::parse(&body("{}")).unwrap_err();
        assert_eq!(fields(missing), ["name", "price", "stock"]);
    }

    #[test]
    fn changes_are_partial_and_refuse_stock() {
        let changes = ItemChanges::parse(&body(r#"{"max_per_user": null}"#)).unwrap();
        assert_eq!(changes.max_per_user, Some(None));
        assert_eq!(changes.name, None);
        assert_eq!(
            fields(ItemChanges::parse(&body(r#"{"stock": 5}"#)).unwrap_err()),
            ["stock"]
        );
        assert_eq!(
            fields(ItemChanges::parse(&body("{}")).unwrap_err()),
            ["body"]
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name_in_every_body() {
        let item = r#""name": "Lamp", "price": 1, "stock": 1"#;
        assert_eq!(
            fields(NewItem::parse(&body(&format!(r#"{{{item}, "colour": "red"}}"#))).unwrap_err()),
            ["colour"]
        );
        assert_eq!(
            fields(ItemChanges::parse(&body(r#"{"price": 5, "prise": 6}"#)).unwrap_err()),
            ["prise"]
        );
        assert_eq!(
            fields(ItemChanges::parse(&body(r#"{"x-unknown": 42}"#)).unwrap_err()),
            ["x-unknown"]
        );
        assert_eq!(
            fields(RestockQuantity::parse(&body(r#"{"quantity": 1, "note": "x"}"#)).unwrap_err()),
            ["note"]
        );
    }

    #[test]
    fn integral_numbers_are_accepted_as_integers() {
        let item =
            NewItem::parse(&body(r#"{"name": "Lamp", "price": 5282.0, "stock": 17.0}"#)).unwrap();
        assert_eq!((item.price, item.stock), (5282, 17));
        assert_eq!(
            RestockQuantity::parse(&body(r#"{"quantity": 3778.0}"#)).map(RestockQuantity::get),
            Ok(3778)
        );
    }

    #[test]
    fn names_are_held_to_the_contract_as_sent() {
        // Control characters anywhere, even where trimming would drop them.
        for name in [r"La\u0000mp", r"Lamp\n", r"\u0085Lamp", r"La\u009fmp"] {
            assert_eq!(
                NewItem::parse(&body(&format!(
                    r#"{{"name": "{name}", "price": 1, "stock": 1}}"#
                )))
                .unwrap_err(),
                ValidationErrors::single("name", "The name may not contain control characters."),
                "{name}"
            );
        }
        // maxLength counts the blanks that were sent.
        let padded = format!("  {}", "x".repeat(MAX_NAME_CHARS - 1));
        assert!(ItemName::parse(&padded).is_err());
        assert_eq!(
            ItemName::parse(&format!(" {} ", "x".repeat(MAX_NAME_CHARS - 2)))
                .unwrap()
                .as_str()
                .len(),
            MAX_NAME_CHARS - 2
        );
        assert!(ItemName::parse(" \u{3000} ").is_err());
    }

    #[quickcheck]
    fn restock_accepts_exactly_the_bounds(quantity: i64) -> bool {
        let parsed = RestockQuantity::parse(&body(&format!(r#"{{"quantity": {quantity}}}"#)));
        parsed.is_ok() == (1..=MAX_STOCK).contains(&quantity)
    }

    #[quickcheck]
    fn stock_never_parses_negative(value: i64) -> bool {
        stock(value).is_ok() == (0..=MAX_STOCK).contains(&value)
    }
}
