//! The error table in docs/api.md is what clients read to decide what to do with an
//! answer, so it must name exactly the errors the system gives. This test holds it to
//! the two places they come from: [`ApiError`] (every error a service answers with) and
//! the gateway's own JSON answers in deploy/nginx/gateway.conf.template. A code added to
//! either without a row, or a row left after its code is gone, fails it; so does a code
//! missing from (or left in) proto-docs/openapi.json's `ErrorEnvelope`.

use crate::ApiError;
use actix_web::ResponseError;
use common::validation::ValidationErrors;
use std::collections::BTreeSet;

const API_DOC: &str = include_str!("../../../docs/api.md");
const GATEWAY_TEMPLATE: &str = include_str!("../../../deploy/nginx/gateway.conf.template");

/// Where an answer comes from: a service ([`ApiError`]) or the gateway itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Service,
    Gateway,
}

/// Which variant `error` is. There is no wildcard arm: a new variant does not compile
/// until it is numbered here, and [`VARIANTS`] must then grow, or the test fails.
fn variant(error: &ApiError) -> usize {
    match error {
        ApiError::Unauthenticated => 0,
        ApiError::InvalidCredentials => 1,
        ApiError::Forbidden => 2,
        ApiError::NotFound => 3,
        ApiError::MethodNotAllowed { .. } => 4,
        ApiError::Validation(_) => 5,
        ApiError::InsufficientStock { .. } => 6,
        ApiError::PurchaseLimitExceeded { .. } => 7,
        ApiError::TooManyRequests { .. } => 8,
        ApiError::SystemBusy { .. } => 9,
        ApiError::IdempotencyKeyReused => 10,
        ApiError::OutcomeUnknown { .. } => 11,
        ApiError::SaleNotStarted { .. } => 12,
        ApiError::SaleEnded { .. } => 13,
        ApiError::OrderNotReserved { .. } => 14,
        ApiError::OrderExpired => 15,
        ApiError::PayloadTooLarge { .. } => 16,
        ApiError::Internal(_) => 17,
        ApiError::NoWaitingRoom => 18,
        ApiError::NotAdmitted { .. } => 19,
    }
}

const VARIANTS: usize = 20;

/// One error of each variant.
fn one_of_each() -> Vec<ApiError> {
    vec![
        ApiError::Unauthenticated,
        ApiError::InvalidCredentials,
        ApiError::Forbidden,
        ApiError::NotFound,
        ApiError::MethodNotAllowed {
            allowed: "GET".into(),
        },
        ApiError::Validation(ValidationErrors::single("name", "required")),
        ApiError::InsufficientStock { current_stock: 0 },
        ApiError::PurchaseLimitExceeded {
            limit: 1,
            already_bought: 1,
        },
        ApiError::TooManyRequests {
            retry_after_secs: 1,
        },
        ApiError::SystemBusy {
            retry_after_secs: 1,
        },
        ApiError::IdempotencyKeyReused,
        ApiError::OutcomeUnknown {
            order_id: "o-1".into(),
        },
        ApiError::SaleNotStarted {
            starts_at: "2030-01-01T00:00:00Z".into(),
        },
        ApiError::SaleEnded {
            ended_at: "2020-01-01T00:00:00Z".into(),
        },
        ApiError::OrderNotReserved {
            status: "paid".into(),
        },
        ApiError::OrderExpired,
        ApiError::PayloadTooLarge { limit_bytes: 16 },
        ApiError::Internal(anyhow::anyhow!("a defect")),
        ApiError::NoWaitingRoom,
        ApiError::NotAdmitted {
            state: Some("waiting"),
        },
    ]
}

/// (status, code, source) of every error the code can answer with.
fn produced() -> BTreeSet<(u16, String, Source)> {
    let errors = one_of_each();
    let listed: BTreeSet<usize> = errors.iter().map(variant).collect();
    assert_eq!(
        listed,
        (0..VARIANTS).collect(),
        "one_of_each lists every ApiError variant once"
    );
    let mut produced: BTreeSet<_> = errors
        .iter()
        .map(|error| {
            let status = error.status_code().as_u16();
            (status, error.error_code().to_owned(), Source::Service)
        })
        .collect();
    produced.extend(gateway_answers());
    produced
}

/// The gateway's own answers: each `return NNN '{..."error_code":"CODE"...}'`.
fn gateway_answers() -> Vec<(u16, String, Source)> {
    let answers: Vec<_> = GATEWAY_TEMPLATE
        .lines()
        .filter_map(|line| line.trim().strip_prefix("return "))
        .filter_map(|rest| {
            let (status, body) = rest.split_once(' ')?;
            let code = body.split("\"error_code\":\"").nth(1)?.split('"').next()?;
            Some((status.parse().ok()?, code.to_owned(), Source::Gateway))
        })
        .collect();
    assert!(
        answers.len() >= 15,
        "found only {} gateway answers",
        answers.len()
    );
    answers
}

/// The rows of the table under docs/api.md's "## Errors", as cells.
fn table_rows() -> Vec<Vec<&'static str>> {
    let start = API_DOC
        .find("\n## Errors\n")
        .expect("docs/api.md has an Errors section");
    let section = &API_DOC[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .map(|row| row.trim_end_matches(" |").split(" | ").collect::<Vec<_>>())
        .filter(|cells| cells[0].parse::<u16>().is_ok())
        .collect();
    for cells in &rows {
        assert_eq!(cells.len(), 5, "a row of five cells: {cells:?}");
    }
    rows
}

/// (status, code, source) of every row; its *from* cell names services or `gateway`, and
/// a row may name both.
fn documented() -> BTreeSet<(u16, String, Source)> {
    let mut documented = BTreeSet::new();
    for cells in table_rows() {
        let status: u16 = cells[0].parse().expect("a status");
        let code = cells[1].trim_matches('`');
        for source in cells[2].split(", ") {
            let source = if source == "gateway" {
                Source::Gateway
            } else {
                Source::Service
            };
            documented.insert((status, code.to_owned(), source));
        }
    }
    documented
}

#[test]
fn the_api_error_table_lists_exactly_the_errors_the_code_answers_with() {
    let produced = produced();
    let documented = documented();
    assert_eq!(
        produced.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(u16, String, Source)>::new(),
        "answered by the code, missing from docs/api.md's error table"
    );
    assert_eq!(
        documented.difference(&produced).collect::<Vec<_>>(),
        Vec::<&(u16, String, Source)>::new(),
        "in docs/api.md's error table, answered by no code"
    );
}

#[test]
fn every_source_in_the_table_is_a_service_or_the_gateway() {
    let known = [
        "auth-service",
        "catalog-service",
        "purchase-service",
        "gateway",
    ];
    for cells in table_rows() {
        for source in cells[2].split(", ") {
            assert!(
                known.contains(&source),
                "unknown source {source:?} in {cells:?}"
            );
        }
    }
}

#[test]
fn the_openapi_error_envelope_lists_exactly_the_codes_the_code_answers_with() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../proto-docs/openapi.json")).expect("JSON");
    let listed: BTreeSet<&str> =
        doc["components"]["schemas"]["ErrorEnvelope"]["properties"]["error_code"]["enum"]
            .as_array()
            .expect("ErrorEnvelope.error_code.enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
    let produced = produced();
    let answered: BTreeSet<&str> = produced.iter().map(|(_, code, _)| code.as_str()).collect();
    assert_eq!(
        listed, answered,
        "proto-docs/openapi.json's ErrorEnvelope error_code enum"
    );
}
