//! Whether a rule's constraints hold (an allow rule's, or a deny, approval-required or rate-limit
//! rule's, which then applies) for a request, and if not, which one failed and why.
//! The body is parsed as JSON at most once per evaluation, and only when a `body_json` check needs it.

use std::cell::OnceCell;
use std::fmt;

use serde_json::Value;

use super::email;
use super::input::EvaluationInput;
use crate::{BodyCheck, Constraints};

/// The request body, parsed on first need.
#[derive(Debug)]
pub(crate) struct Body<'a> {
    bytes: &'a [u8],
    parsed: OnceCell<Result<Value, FailReason>>,
}

impl<'a> Body<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Body { bytes, parsed: OnceCell::new() }
    }

    fn json(&self) -> Result<&Value, FailReason> {
        self.parsed
            .get_or_init(|| {
                if self.bytes.is_empty() {
                    Err(FailReason::BodyMissing)
                } else {
                    super::strict_json::parse(self.bytes).ok_or(FailReason::BodyNotJson)
                }
            })
            .as_ref()
            .map_err(|reason| *reason)
    }
}

/// A constraint of a rule, as named in the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint<'s> {
    MaxBodyBytes,
    AllowedQueryKeys,
    /// `constraints.body_json[index]`, a check of `kind` at `pointer`.
    BodyJson {
        index: usize,
        pointer: &'s str,
        kind: &'static str,
    },
}

/// Why a constraint failed. Never carries request values (bodies may be confidential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    BodyTooLarge,
    QueryKeyNotAllowed,
    BodyMissing,
    BodyNotJson,
    PointerMissing,
    ValueNotAllowed,
    NotStringOrArray,
    TooLong,
    NotNumber,
    NumberTooLarge,
    NotEmail,
    EmailDomainNotAllowed,
    EmailNotAllowed,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::BodyTooLarge => "body_too_large",
            FailReason::QueryKeyNotAllowed => "query_key_not_allowed",
            FailReason::BodyMissing => "body_missing",
            FailReason::BodyNotJson => "body_not_json",
            FailReason::PointerMissing => "pointer_missing",
            FailReason::ValueNotAllowed => "value_not_allowed",
            FailReason::NotStringOrArray => "not_string_or_array",
            FailReason::TooLong => "too_long",
            FailReason::NotNumber => "not_number",
            FailReason::NumberTooLarge => "number_too_large",
            FailReason::NotEmail => "not_email",
            FailReason::EmailDomainNotAllowed => "email_domain_not_allowed",
            FailReason::EmailNotAllowed => "email_not_allowed",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            FailReason::BodyTooLarge => "the body is larger than allowed",
            FailReason::QueryKeyNotAllowed => "the request has a query key not in the list",
            FailReason::BodyMissing => "the request has no body",
            FailReason::BodyNotJson => "the body is not JSON",
            FailReason::PointerMissing => "the body has no value there",
            FailReason::ValueNotAllowed => "the value is not one of the allowed values",
            FailReason::NotStringOrArray => "the value is not a string or an array",
            FailReason::TooLong => "the value is longer than allowed",
            FailReason::NotNumber => "the value is not a number",
            FailReason::NumberTooLarge => "the number is larger than allowed",
            FailReason::NotEmail => "the value is not an email address (or a list of them)",
            FailReason::EmailDomainNotAllowed => "an email address is outside the allowed domains",
            FailReason::EmailNotAllowed => "an email address is not one of the allowed addresses",
        }
    }
}

/// Where a constraint failed, compactly (what the trace stores): which constraint and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    at: At,
    reason: FailReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    MaxBodyBytes,
    AllowedQueryKeys,
    BodyJson(u32),
}

impl Failure {
    /// The failure with the constraint spelled out from the rule's `constraints`.
    pub(crate) fn expand(self, constraints: Option<&Constraints>) -> ConstraintFailure<'_> {
        let constraint = match self.at {
            At::MaxBodyBytes => Constraint::MaxBodyBytes,
            At::AllowedQueryKeys => Constraint::AllowedQueryKeys,
            At::BodyJson(index) => {
                let index = usize::try_from(index).unwrap_or(usize::MAX);
                let item = constraints.and_then(|c| c.body_json.get(index));
                Constraint::BodyJson {
                    index,
                    pointer: item.map_or("", |i| i.pointer.as_str()),
                    kind: item.map_or("", |i| kind(&i.check)),
                }
            }
        };
        ConstraintFailure { constraint, reason: self.reason }
    }
}

/// The first constraint of a rule that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConstraintFailure<'s> {
    pub constraint: Constraint<'s>,
    pub reason: FailReason,
}

impl ConstraintFailure<'_> {
    /// The path of the failing constraint in the rule, e.g. `constraints.body_json[1].max_length`.
    pub fn field(&self) -> String {
        match self.constraint {
            Constraint::MaxBodyBytes => "constraints.max_body_bytes".to_owned(),
            Constraint::AllowedQueryKeys => "constraints.allowed_query_keys".to_owned(),
            Constraint::BodyJson { index, kind, .. } => format!("constraints.body_json[{index}].{kind}"),
        }
    }
}

impl fmt::Display for ConstraintFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.field())?;
        if let Constraint::BodyJson { pointer, .. } = self.constraint {
            write!(f, " (at {pointer:?})")?;
        }
        write!(f, ": {}", self.reason.describe())
    }
}

/// Checks every constraint in the rule's order; the first failure wins.
pub(crate) fn check(
    constraints: &Constraints,
    input: &EvaluationInput<'_>,
    body: &Body<'_>,
) -> Result<(), Failure> {
    check_with(constraints, input, || body.json())
}

/// Whether a deny, approval-required or rate-limit rule's constraints make it apply. As [`check`],
/// except where that would let a request slip past a restrictive rule:
/// - a body that is there but is not JSON (or repeats an object key) cannot be judged, so the rule
///   applies (fail closed; an upstream expecting JSON refuses such a body anyway);
/// - a body that is a JSON array (a JSON-RPC batch) makes the rule apply when the whole array or any
///   one of its elements satisfies the constraints, so a call cannot hide inside a batch.
pub(crate) fn check_restrictive(
    constraints: &Constraints,
    input: &EvaluationInput<'_>,
    body: &Body<'_>,
) -> Result<(), Failure> {
    let failure = match check(constraints, input, body) {
        Ok(()) => return Ok(()),
        Err(failure) if failure.reason == FailReason::BodyNotJson => return Ok(()),
        Err(failure) => failure,
    };
    if let Ok(Value::Array(items)) = body.json()
        && items.iter().any(|item| check_with(constraints, input, || Ok(item)).is_ok())
    {
        return Ok(());
    }
    Err(failure)
}

fn check_with<'v>(
    constraints: &Constraints,
    input: &EvaluationInput<'_>,
    json: impl Fn() -> Result<&'v Value, FailReason>,
) -> Result<(), Failure> {
    if let Some(max) = constraints.max_body_bytes
        && u64::try_from(input.body.len()).map_or(true, |len| len > max)
    {
        return Err(Failure { at: At::MaxBodyBytes, reason: FailReason::BodyTooLarge });
    }
    if let Some(allowed) = &constraints.allowed_query_keys
        && !input.query_keys.iter().all(|key| allowed.contains(key))
    {
        return Err(Failure { at: At::AllowedQueryKeys, reason: FailReason::QueryKeyNotAllowed });
    }
    for (index, item) in constraints.body_json.iter().enumerate() {
        let at = At::BodyJson(u32::try_from(index).unwrap_or(u32::MAX));
        let fail = |reason| Failure { at, reason };
        let json = json().map_err(fail)?;
        let value = json.pointer(&item.pointer).ok_or_else(|| fail(FailReason::PointerMissing))?;
        check_value(&item.check, value).map_err(fail)?;
    }
    Ok(())
}

fn kind(check: &BodyCheck) -> &'static str {
    match check {
        BodyCheck::AllowedValues(_) => "allowed_values",
        BodyCheck::MaxLength(_) => "max_length",
        BodyCheck::MaxNumber(_) => "max_number",
        BodyCheck::AllowedEmailDomains(_) => "allowed_email_domains",
        BodyCheck::AllowedEmails(_) => "allowed_emails",
    }
}

fn check_value(check: &BodyCheck, value: &Value) -> Result<(), FailReason> {
    match check {
        BodyCheck::AllowedValues(allowed) => {
            if allowed.iter().any(|a| json_eq(a, value)) {
                Ok(())
            } else {
                Err(FailReason::ValueNotAllowed)
            }
        }
        BodyCheck::MaxLength(max) => {
            let len = match value {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                _ => return Err(FailReason::NotStringOrArray),
            };
            if u64::try_from(len).map_or(true, |len| len > *max) { Err(FailReason::TooLong) } else { Ok(()) }
        }
        BodyCheck::MaxNumber(max) => match value.as_f64() {
            Some(n) if n <= *max => Ok(()),
            Some(_) => Err(FailReason::NumberTooLarge),
            None => Err(FailReason::NotNumber),
        },
        BodyCheck::AllowedEmailDomains(domains) => each_email(value, |text| match email::domain(text) {
            None => Err(FailReason::NotEmail),
            Some(d) if domains.iter().any(|a| a.eq_ignore_ascii_case(d)) => Ok(()),
            Some(_) => Err(FailReason::EmailDomainNotAllowed),
        }),
        BodyCheck::AllowedEmails(emails) => each_email(value, |text| match email::address(text) {
            None => Err(FailReason::NotEmail),
            Some(addr) if emails.iter().any(|a| a.trim().eq_ignore_ascii_case(addr)) => Ok(()),
            Some(_) => Err(FailReason::EmailNotAllowed),
        }),
    }
}

/// Applies `check` to a string value or to every element of an array of strings.
fn each_email(value: &Value, check: impl Fn(&str) -> Result<(), FailReason>) -> Result<(), FailReason> {
    match value {
        Value::String(s) => check(s),
        Value::Array(items) => items.iter().try_for_each(|item| match item {
            Value::String(s) => check(s),
            _ => Err(FailReason::NotEmail),
        }),
        _ => Err(FailReason::NotEmail),
    }
}

/// JSON equality: numbers compare by value (`1` equals `1.0`), objects regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
