//! Request input, free of any web framework: a JSON object body with typed access to
//! its fields (the per-field messages of a 422 answer), and pagination. Domain types
//! parse from what these accessors return, so handlers never see raw input; the web
//! layer reads bodies into a [`JsonObject`] under the size limit.

use crate::validation::ValidationErrors;
use serde_json::{Map, Value};

/// A request body that must be a JSON object. An empty body reads as `{}`, so a missing
/// field is reported by name rather than as a malformed body.
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>, NotIntegers);

/// The fields whose number, as written, is not an integer although it reads as one
/// (`0.9999999999999999999` is the float 1.0): an integer field refuses them.
#[derive(Debug, Clone, Default)]
pub struct NotIntegers(Vec<String>);

impl From<Map<String, Value>> for JsonObject {
    /// A body built in code: its numbers are what they are.
    fn from(map: Map<String, Value>) -> Self {
        JsonObject(map, NotIntegers::default())
    }
}

fn body_error(message: &str) -> ValidationErrors {
    ValidationErrors::single("body", message)
}

impl JsonObject {
    /// A body's bytes as a JSON object; anything else is an error under `body`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => {
                let not_integers = NotIntegers::of(&map, bytes);
                Ok(JsonObject(map, not_integers))
            }
            Ok(_) => Err(body_error("The request body must be a JSON object.")),
            Err(error) => Err(body_error(&format!(
                "The request body is not valid JSON: {error}."
            ))),
        }
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A required string field.
    pub fn string(&self, field: &str) -> Result<&str, String> {
        match self.present(field) {
            None => Err(format!("The {field} field is required.")),
            Some(value) => as_str(field, value),
        }
    }

    /// A string field that may be absent or null.
    pub fn optional_string(&self, field: &str) -> Result<Option<&str>, String> {
        self.present(field).map(|v| as_str(field, v)).transpose()
    }

    /// A required integer field.
    pub fn integer(&self, field: &str) -> Result<i64, String> {
        match self.present(field) {
            None => Err(format!("The {field} field is required.")),
            Some(value) => self.as_integer(field, value),
        }
    }

    /// An integer field that may be absent or null.
    pub fn optional_integer(&self, field: &str) -> Result<Option<i64>, String> {
        self.present(field)
            .map(|v| self.as_integer(field, v))
            .transpose()
    }

    fn as_integer(&self, field: &str, value: &Value) -> Result<i64, String> {
        if self.1.0.iter().any(|name| name == field) {
            return Err(format!("The {field} must be an integer."));
        }
        as_integer(field, value)
    }

    /// A boolean field that may be absent (`None`); sent, it must be `true` or `false`.
    pub fn optional_boolean(&self, field: &str) -> Result<Option<bool>, String> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(format!("The {field} must be true or false.")),
        }
    }

    /// Whether the field was sent at all (null included), for partial updates.
    pub fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// A body that is exactly `{"quantity": n}` with `n` in `1..=max` (a purchase, a
    /// restock).
    pub fn quantity_only(&self, max: u32) -> Result<u32, ValidationErrors> {
        let mut errors = self.unknown_fields(&["quantity"]);
        let quantity = errors.check(
            "quantity",
            self.integer("quantity").and_then(|quantity| {
                u32::try_from(quantity)
                    .ok()
                    .filter(|quantity| (1..=max).contains(quantity))
                    .ok_or_else(|| format!("The quantity must be between 1 and {max}."))
            }),
        );
        match quantity {
            Some(quantity) if errors.is_empty() => Ok(quantity),
            _ => Err(errors),
        }
    }

    /// The errors a body with exactly the fields `known` starts from: one per other
    /// field, by name. A misspelt or unsupported field is refused, never silently
    /// ignored (the contract's `additionalProperties: false`).
    pub fn unknown_fields(&self, known: &[&str]) -> ValidationErrors {
        let mut errors = ValidationErrors::default();
        for field in self
            .0
            .keys()
            .filter(|field| !known.contains(&field.as_str()))
        {
            errors.add(field, format!("The {field} field is not allowed."));
        }
        errors
    }
}

impl NotIntegers {
    /// The top-level fields of `map` (parsed from `body`) holding a number written with a
    /// fraction or an exponent that is not a whole number, though its float is. Bodies
    /// without such a float (every purchase's) are not read twice.
    fn of(map: &Map<String, Value>, body: &[u8]) -> Self {
        let integral_float = |v: &Value| v.is_f64() && v.as_f64().is_some_and(|f| f.fract() == 0.0);
        if !map.values().any(integral_float) {
            return NotIntegers::default();
        }
        let Ok(raw) = serde_json::from_slice::<
            std::collections::HashMap<String, &serde_json::value::RawValue>,
        >(body) else {
            return NotIntegers::default();
        };
        NotIntegers(
            map.iter()
                .filter(|(_, value)| integral_float(value))
                .filter(|(name, _)| {
                    raw.get(name.as_str())
                        .is_some_and(|literal| !literal_is_integer(literal.get()))
                })
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }
}

/// Whether a JSON number literal denotes a whole number: every digit past the decimal
/// point, once the exponent has moved it, is 0 (`382.0`, `3.82e2`, `1e300` are;
/// `0.9999999999999999999`, `1.5e0` are not).
fn literal_is_integer(literal: &str) -> bool {
    let literal = literal.trim().trim_start_matches('-');
    let (mantissa, exponent) = match literal.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let exponent = exponent.trim_start_matches('+');
            // Past i64 the exponent moves every digit one way: the number is either
            // huge (whole) or tiny (whole only if it is 0).
            let saturated = if exponent.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            };
            (mantissa, exponent.parse::<i64>().unwrap_or(saturated))
        }
        None => (literal, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let point = (whole.len() as i64).saturating_add(exponent);
    whole
        .bytes()
        .chain(fraction.bytes())
        .enumerate()
        .all(|(at, digit)| (at as i64) < point || digit == b'0')
}

/// A name (a user's, an item's) trimmed of surrounding blanks: not blank, no control
/// characters, at most `max_chars` characters as sent, surrounding blanks included (as
/// the contract's `maxLength` counts).
pub fn display_name(raw: &str, max_chars: usize) -> Result<&str, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("The name field is required.".into());
    }
    if raw.chars().count() > max_chars {
        return Err(format!(
            "The name may not be greater than {max_chars} characters."
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err("The name may not contain control characters.".into());
    }
    Ok(trimmed)
}

fn as_str<'a>(field: &str, value: &'a Value) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("The {field} must be a string."))
}

/// A JSON number with no fractional part, as JSON Schema counts integers: `382.0` is
/// 382 (one written with a fraction that its float rounds away is refused before this,
/// see [`NotIntegers`]). Integers beyond `i64` saturate, so the field's own bounds name
/// the limit.
fn as_integer(field: &str, value: &Value) -> Result<i64, String> {
    let not_an_integer = || format!("The {field} must be an integer.");
    match value {
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(integer), _, _) => Ok(integer),
            (None, Some(_), _) => Ok(i64::MAX),
            (None, None, Some(float)) if float.fract() == 0.0 => Ok(float as i64),
            _ => Err(not_an_integer()),
        },
        _ => Err(not_an_integer()),
    }
}

/// `?page=&per_page=`: page 1..=[`Pagination::MAX_PAGE`] (default 1), per_page 1..=100
/// (default 20). A page past the last one is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: u32,
    pub per_page: u32,
}

impl Pagination {
    pub const DEFAULT_PER_PAGE: u32 = 20;
    pub const MAX_PER_PAGE: u32 = 100;
    /// The last page that starts within `u32::MAX` rows (any later one would be empty).
    pub const MAX_PAGE: u32 = u32::MAX / Self::MAX_PER_PAGE;

    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let page = errors.check(
            "page",
            parse_bounded(page, 1, 1, Self::MAX_PAGE).map_err(|_| {
                format!(
                    "The page must be an integer between 1 and {}.",
                    Self::MAX_PAGE
                )
            }),
        );
        let per_page = errors.check(
            "per_page",
            parse_bounded(per_page, Self::DEFAULT_PER_PAGE, 1, Self::MAX_PER_PAGE).map_err(|_| {
                format!(
                    "The per_page must be an integer between 1 and {}.",
                    Self::MAX_PER_PAGE
                )
            }),
        );
        match (page, per_page) {
            (Some(page), Some(per_page)) => Ok(Pagination { page, per_page }),
            _ => Err(errors),
        }
    }

    /// From a query string's `page` and `per_page`; a bad value is an error naming it.
    pub fn from_query(
        query: &std::collections::HashMap<String, String>,
    ) -> Result<Self, ValidationErrors> {
        Self::parse(
            query.get("page").map(String::as_str),
            query.get("per_page").map(String::as_str),
        )
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }
}

fn parse_bounded(raw: Option<&str>, default: u32, min: u32, max: u32) -> Result<u32, ()> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> JsonObject {
        JsonObject::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_quantity_only_body_holds_one_bounded_quantity() {
        assert_eq!(body(r#"{"quantity": 7}"#).quantity_only(10), Ok(7));
        assert_eq!(body(r#"{"quantity": 10.0}"#).quantity_only(10), Ok(10));
        for (json, message) in [
            (
                r#"{"quantity": 0}"#,
                "The quantity must be between 1 and 10.",
            ),
            (
                r#"{"quantity": 11}"#,
                "The quantity must be between 1 and 10.",
            ),
            (
                r#"{"quantity": -1}"#,
                "The quantity must be between 1 and 10.",
            ),
            (
                r#"{"quantity": 99999999999}"#,
                "The quantity must be between 1 and 10.",
            ),
            (r#"{"quantity": "3"}"#, "The quantity must be an integer."),
            ("{}", "The quantity field is required."),
        ] {
            let errors = body(json).quantity_only(10).unwrap_err();
            assert_eq!(errors.as_map()["quantity"], [message], "{json}");
        }
        let errors = body(r#"{"quantity": 1, "extra": 2}"#)
            .quantity_only(10)
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["extra"]);
    }

    #[test]
    fn a_display_name_is_trimmed_bounded_as_sent_and_printable() {
        assert_eq!(display_name("  Lamp ", 7), Ok("Lamp"));
        assert_eq!(
            display_name("  Lamp  ", 7),
            Err("The name may not be greater than 7 characters.".into())
        );
        assert_eq!(
            display_name(" \t ", 7),
            Err("The name field is required.".into())
        );
        assert_eq!(
            display_name("La\u{7}mp", 7),
            Err("The name may not contain control characters.".into())
        );
    }

    #[test]
    fn pagination_defaults_and_bounds() {
        assert_eq!(
            Pagination::parse(None, None),
            Ok(Pagination {
                page: 1,
                per_page: 20
            })
        );
        let p = Pagination::parse(Some("3"), Some("100")).unwrap();
        assert_eq!((p.offset(), p.limit()), (200, 100));
        for (page, per_page) in [
            (Some("0"), None),
            (None, Some("101")),
            (None, Some("0")),
            (Some("x"), None),
            (Some("-1"), None),
        ] {
            assert!(
                Pagination::parse(page, per_page).is_err(),
                "{page:?} {per_page:?}"
            );
        }
        let errors = Pagination::parse(Some("0"), Some("500")).unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["page", "per_page"]);
    }

    #[test]
    fn the_last_page_is_the_documented_bound() {
        assert_eq!(Pagination::MAX_PAGE, 42_949_672);
        let last = Pagination::parse(Some("42949672"), Some("100")).unwrap();
        assert_eq!(last.offset(), 4_294_967_100);
        for page in ["42949673", "381122915193860944560128"] {
            let errors = Pagination::parse(Some(page), None).unwrap_err();
            assert_eq!(
                errors,
                ValidationErrors::single(
                    "page",
                    "The page must be an integer between 1 and 42949672."
                ),
                "{page}"
            );
        }
    }

    fn object(json: &str) -> JsonObject {
        JsonObject::parse(json.as_bytes()).expect("a JSON object")
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        assert!(JsonObject::parse(b"  ").unwrap().0.is_empty());
    }

    #[test]
    fn malformed_json_and_non_objects_are_refused() {
        assert!(JsonObject::parse(b"{\"a\":").is_err());
        assert!(JsonObject::parse(b"[1,2]").is_err());
    }

    #[test]
    fn fields_report_missing_and_wrong_types_by_name() {
        let body = object(r#"{"quantity": "abc", "name": 5, "price": 1.5, "n": null}"#);
        assert_eq!(
            body.integer("quantity").unwrap_err(),
            "The quantity must be an integer."
        );
        assert_eq!(
            body.string("name").unwrap_err(),
            "The name must be a string."
        );
        assert_eq!(
            body.integer("price").unwrap_err(),
            "The price must be an integer."
        );
        assert_eq!(body.string("n").unwrap_err(), "The n field is required.");
        assert_eq!(body.optional_integer("n"), Ok(None));
        assert_eq!(
            body.string("email").unwrap_err(),
            "The email field is required."
        );
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_spelling() {
        let body = object(r#"{"a": 382.0, "b": 1e2, "c": -0.0, "d": -7.0, "e": 382.5}"#);
        assert_eq!(body.integer("a"), Ok(382));
        assert_eq!(body.integer("b"), Ok(100));
        assert_eq!(body.integer("c"), Ok(0));
        assert_eq!(body.optional_integer("d"), Ok(Some(-7)));
        assert_eq!(body.integer("e").unwrap_err(), "The e must be an integer.");
    }

    #[test]
    fn a_number_that_only_reads_as_an_integer_is_not_one() {
        let body = object(
            r#"{"q": 0.9999999999999999999, "r": 1.0000000000000000001, "s": 99999999999999999999.5, "t": 1e0, "u": 0.5e1}"#,
        );
        for field in ["q", "r", "s"] {
            assert_eq!(
                body.integer(field).unwrap_err(),
                format!("The {field} must be an integer."),
                "{field}"
            );
            assert!(body.optional_integer(field).is_err(), "{field}");
        }
        assert_eq!(body.integer("t"), Ok(1));
        assert_eq!(body.integer("u"), Ok(5));
        assert_eq!(
            object(r#"{"quantity": 0.9999999999999999999}"#)
                .quantity_only(10)
                .unwrap_err()
                .as_map()["quantity"],
            ["The quantity must be an integer."]
        );
        assert_eq!(
            object(r#"{"quantity": 1}"#).quantity_only(10),
            Ok(1),
            "an integer literal is read once"
        );
    }

    #[test]
    fn number_literals_are_whole_when_no_nonzero_digit_is_left_past_the_point() {
        for (literal, whole) in [
            ("382", true),
            ("382.0", true),
            ("-382.000", true),
            ("3.82e2", true),
            ("3.82E+2", true),
            ("1e300", true),
            ("0.0e-7", true),
            ("5e99999999999999999999", true),
            ("0.9999999999999999999", false),
            ("3.825e2", false),
            ("1e-1", false),
            ("5e-99999999999999999999", false),
        ] {
            assert_eq!(literal_is_integer(literal), whole, "{literal}");
        }
    }

    #[test]
    fn integers_beyond_i64_saturate_so_bounds_report_them() {
        let body = object(
            r#"{"big": 18446744073709551615, "huge": 1e300, "tiny": -1e300, "more": 99999999999999999999}"#,
        );
        assert_eq!(body.integer("big"), Ok(i64::MAX));
        assert_eq!(body.integer("huge"), Ok(i64::MAX));
        assert_eq!(body.integer("tiny"), Ok(i64::MIN));
        assert_eq!(body.integer("more"), Ok(i64::MAX));
    }

    #[test]
    fn unknown_fields_are_named() {
        let body = object(r#"{"quantity": 1, "quantiy": 2, "x-extra": null}"#);
        let errors = body.unknown_fields(&["quantity"]);
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["quantiy", "x-extra"]);
        assert_eq!(errors, {
            let mut expected = ValidationErrors::default();
            expected.add("quantiy", "The quantiy field is not allowed.");
            expected.add("x-extra", "The x-extra field is not allowed.");
            expected
        });
        assert!(
            object(r#"{"quantity": 1}"#)
                .unknown_fields(&["quantity"])
                .is_empty()
        );
    }
}
