//! The Anthropic side of the fake: `api.anthropic.com`'s routes, headers, JSON and SSE shapes, as the
//! official SDKs parse them. Note: the pinned Python SDK (2.17.0) sends its API key as
//! `authorization: Bearer <key>`, not `x-api-key`; both are accepted.

use serde_json::{Value, json};

use super::{
    Answer, AnswerBody, Call, Event, INPUT_TOKENS, Keys, OUTPUT_TOKENS, RETRY_AFTER_SECONDS, Scenario,
    id_suffix, plan, split_steps, sse,
};

pub(super) fn answer(call: &Call, keys: &Keys<'_>) -> (Answer, Scenario) {
    let request_id = format!("req_{}", id_suffix());
    let headers = response_headers(&request_id);
    let refuse = |status: u16, kind: &str, message: &str| {
        (error(status, headers.clone(), &request_id, kind, message), Scenario::Normal)
    };
    // The API takes the key as `x-api-key` or, as the Python SDK 2.x sends it, `authorization: Bearer`.
    let bearer = format!("Bearer {}", keys.anthropic);
    match (call.header("x-api-key"), call.header("authorization")) {
        (Some(key), _) if key == keys.anthropic => {}
        (None, Some(value)) if value == bearer => {}
        (Some(_), _) => return refuse(401, "authentication_error", "invalid x-api-key"),
        (None, Some(_)) => return refuse(401, "authentication_error", "Invalid bearer token"),
        (None, None) => return refuse(401, "authentication_error", "x-api-key header is required"),
    }
    if call.header("anthropic-version").is_none() {
        return refuse(400, "invalid_request_error", "anthropic-version: header is required");
    }
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", "/v1/models") => (Answer::json(200, headers, &models()), Scenario::Normal),
        ("POST", "/v1/messages" | "/v1/messages/count_tokens") => {
            let body: Value = match serde_json::from_slice(&call.body) {
                Ok(body @ Value::Object(_)) => body,
                _ => {
                    return refuse(
                        400,
                        "invalid_request_error",
                        "There was an issue with your request body.",
                    );
                }
            };
            let Some(model) = body["model"].as_str().map(str::to_owned) else {
                return refuse(400, "invalid_request_error", "model: Field required");
            };
            let scenario = Scenario::from_model(&model);
            if let Scenario::Error(status) = scenario {
                return (scenario_error(status, headers, &request_id), scenario);
            }
            if call.path == "/v1/messages/count_tokens" {
                return (Answer::json(200, headers, &json!({"input_tokens": INPUT_TOKENS})), scenario);
            }
            let deltas = scenario.deltas(keys.anthropic);
            (messages(&body, &model, &deltas, &scenario, keys.anthropic, headers), scenario)
        }
        _ => refuse(404, "not_found_error", "Not found"),
    }
}

fn response_headers(request_id: &str) -> Vec<(String, String)> {
    [
        ("request-id", request_id),
        ("anthropic-organization-id", "00000000-0000-4000-8000-00000000fa4e"),
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:01Z"),
        ("anthropic-ratelimit-input-tokens-limit", "400000"),
        ("anthropic-ratelimit-input-tokens-remaining", "400000"),
        ("anthropic-ratelimit-input-tokens-reset", "2026-01-01T00:00:01Z"),
        ("anthropic-ratelimit-output-tokens-limit", "80000"),
        ("anthropic-ratelimit-output-tokens-remaining", "80000"),
        ("anthropic-ratelimit-output-tokens-reset", "2026-01-01T00:00:01Z"),
        ("cf-ray", "8f0000000000fake-AMS"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

fn error(status: u16, headers: Vec<(String, String)>, request_id: &str, kind: &str, message: &str) -> Answer {
    let mut headers = headers;
    headers.push(("x-should-retry".into(), (status == 429 || status >= 500).to_string()));
    let body =
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id});
    Answer::json(status, headers, &body)
}

/// The answer of `fake-error-{status}`.
fn scenario_error(status: u16, mut headers: Vec<(String, String)>, request_id: &str) -> Answer {
    let (kind, message) = match status {
        400 => ("invalid_request_error", "The fake provider refused this request."),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => ("permission_error", "Your API key does not have permission to use the specified resource."),
        404 => ("not_found_error", "Not found"),
        413 => ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429 => ("rate_limit_error", "Number of requests has exceeded your rate limit."),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "The fake provider refused this request."),
    };
    if status == 429 {
        headers.retain(|(n, _)| n != "anthropic-ratelimit-requests-remaining");
        headers.push(("anthropic-ratelimit-requests-remaining".into(), "0".into()));
        headers.push(("retry-after".into(), RETRY_AFTER_SECONDS.to_string()));
    }
    error(status, headers, request_id, kind, message)
}

fn models() -> Value {
    let model = |id: &str, name: &str| json!({"type": "model", "id": id, "display_name": name, "created_at": "2025-09-29T00:00:00Z"});
    json!({
        "data": [model("claude-sonnet-4-5", "Claude Sonnet 4.5"), model("claude-haiku-4-5", "Claude Haiku 4.5")],
        "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-haiku-4-5"
    })
}

fn messages(
    body: &Value,
    model: &str,
    deltas: &[String],
    scenario: &Scenario,
    key: &str,
    headers: Vec<(String, String)>,
) -> Answer {
    let id = format!("msg_{}", id_suffix());
    let usage = |output: u64| {
        json!({"input_tokens": INPUT_TOKENS, "output_tokens": output, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "service_tier": "standard"})
    };
    let message = |content: Value, stop: Value, usage: Value| {
        json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": null, "usage": usage})
    };
    if body["stream"] != json!(true) {
        let value = message(
            json!([{"type": "text", "text": deltas.concat()}]),
            json!("end_turn"),
            usage(OUTPUT_TOKENS),
        );
        let mut answer = Answer::json(200, headers, &value);
        if *scenario == Scenario::Split {
            answer.body = AnswerBody::Planned(split_steps(value.to_string().into_bytes(), scenario, key));
        }
        return answer;
    }
    let event = |kind: &str, mut data: Value, delta: Option<usize>| {
        data["type"] = json!(kind);
        Event { text: sse(kind, &data), delta }
    };
    let mut events = vec![
        event("message_start", json!({"message": message(json!([]), Value::Null, usage(1))}), None),
        event(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
            None,
        ),
        event("ping", json!({}), None),
    ];
    for (index, delta) in deltas.iter().enumerate() {
        let data = json!({"index": 0, "delta": {"type": "text_delta", "text": delta}});
        events.push(event("content_block_delta", data, Some(index)));
    }
    events.push(event("content_block_stop", json!({"index": 0}), None));
    let final_delta = json!({
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}
    });
    events.push(event("message_delta", final_delta, None));
    events.push(event("message_stop", json!({}), None));
    let mut headers = headers;
    headers.push(("content-type".into(), "text/event-stream; charset=utf-8".into()));
    headers.push(("cache-control".into(), "no-cache".into()));
    Answer { status: 200, headers, body: AnswerBody::Planned(plan(events, scenario, key)) }
}
