//! The OpenAI side of the fake: `api.openai.com`'s routes, headers, JSON and SSE shapes, as the
//! official SDKs parse them.

use base64::Engine;
use serde_json::{Value, json};

use super::{
    Answer, AnswerBody, CREATED, Call, Event, INPUT_TOKENS, Keys, OUTPUT_TOKENS, RETRY_AFTER_SECONDS,
    Scenario, id_suffix, plan, split_steps, sse,
};

pub(super) fn answer(call: &Call, keys: &Keys<'_>) -> (Answer, Scenario) {
    let request_id = format!("req_{}", id_suffix());
    let headers = response_headers(&request_id);
    match call.header("authorization") {
        None => {
            let message = "You didn't provide an API key. You need to provide your API key in an Authorization \
                           header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password \
                           field (with blank username) if you're accessing the API from your browser and are \
                           prompted for a username and password. You can obtain an API key from \
                           https://platform.openai.com/account/api-keys.";
            return (error(401, headers, "invalid_request_error", None, message), Scenario::Normal);
        }
        Some(value) if value != format!("Bearer {}", keys.openai) => {
            let message = "Incorrect API key provided. You can find your API key at \
                           https://platform.openai.com/account/api-keys.";
            return (
                error(401, headers, "invalid_request_error", Some("invalid_api_key"), message),
                Scenario::Normal,
            );
        }
        Some(_) => {}
    }
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", "/v1/models") => (Answer::json(200, headers, &models()), Scenario::Normal),
        ("POST", "/v1/chat/completions" | "/v1/responses" | "/v1/embeddings") => {
            let body: Value = match serde_json::from_slice(&call.body) {
                Ok(body @ Value::Object(_)) => body,
                _ => {
                    let message = "We could not parse the JSON body of your request. (HINT: This likely means \
                                   you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                                   payload, but what was sent was not valid JSON.)";
                    return (error(400, headers, "invalid_request_error", None, message), Scenario::Normal);
                }
            };
            let Some(model) = body["model"].as_str().map(str::to_owned) else {
                let message = "you must provide a model parameter";
                return (error(400, headers, "invalid_request_error", None, message), Scenario::Normal);
            };
            let scenario = Scenario::from_model(&model);
            if let Scenario::Error(status) = scenario {
                return (scenario_error(status, headers), scenario);
            }
            let deltas = scenario.deltas(keys.openai);
            let answer = match call.path.as_str() {
                "/v1/chat/completions" => chat(&body, &model, &deltas, &scenario, keys.openai, headers),
                "/v1/responses" => responses(&body, &model, &deltas, &scenario, keys.openai, headers),
                _ => Answer::json(200, headers, &embeddings(&body, &model)),
            };
            (answer, scenario)
        }
        (method, path) => {
            let message = format!("Invalid URL ({method} {path})");
            (error(404, headers, "invalid_request_error", None, &message), Scenario::Normal)
        }
    }
}

/// The headers api.openai.com sends on every answer (the rate-limit family, ids, timing, a cookie).
fn response_headers(request_id: &str) -> Vec<(String, String)> {
    [
        ("x-request-id", request_id),
        ("openai-processing-ms", "42"),
        ("openai-version", "2020-10-01"),
        ("openai-organization", "user-fakeprovider"),
        ("openai-project", "proj_fakeprovider"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-tokens", "29999980"),
        ("x-ratelimit-reset-tokens", "0s"),
        ("set-cookie", "__cf_bm=fakeprovider; path=/; HttpOnly; Secure; SameSite=None"),
        ("cf-ray", "8f0000000000fake-AMS"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

fn error(
    status: u16,
    headers: Vec<(String, String)>,
    kind: &str,
    code: Option<&str>,
    message: &str,
) -> Answer {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    Answer::json(status, headers, &body)
}

/// The answer of `fake-error-{status}`.
fn scenario_error(status: u16, mut headers: Vec<(String, String)>) -> Answer {
    match status {
        429 => {
            headers.retain(|(n, _)| n != "x-ratelimit-remaining-requests");
            headers.push(("x-ratelimit-remaining-requests".into(), "0".into()));
            headers.push(("retry-after".into(), RETRY_AFTER_SECONDS.to_string()));
            let message = "Rate limit reached for requests. Please try again in 1s.";
            error(429, headers, "requests", Some("rate_limit_exceeded"), message)
        }
        500..=599 => {
            let message = "The server had an error while processing your request. Sorry about that!";
            error(status, headers, "server_error", None, message)
        }
        404 => {
            error(404, headers, "invalid_request_error", Some("model_not_found"), "The model does not exist.")
        }
        _ => error(status, headers, "invalid_request_error", None, "The fake provider refused this request."),
    }
}

fn models() -> Value {
    let model = |id: &str| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "system"});
    json!({"object": "list", "data": [model("gpt-4o-mini"), model("text-embedding-3-small")]})
}

fn chat_usage() -> Value {
    json!({
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

fn sse_headers(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.push(("content-type".into(), "text/event-stream; charset=utf-8".into()));
    headers.push(("cache-control".into(), "no-cache".into()));
    headers
}

fn chat(
    body: &Value,
    model: &str,
    deltas: &[String],
    scenario: &Scenario,
    key: &str,
    headers: Vec<(String, String)>,
) -> Answer {
    let id = format!("chatcmpl-{}", id_suffix());
    let text = deltas.concat();
    if body["stream"] != json!(true) {
        let value = json!({
            "id": id, "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null,
                "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
            "usage": chat_usage(), "service_tier": "default", "system_fingerprint": "fp_fake"
        });
        let mut answer = Answer::json(200, headers, &value);
        if *scenario == Scenario::Split {
            answer.body = AnswerBody::Planned(split_steps(value.to_string().into_bytes(), scenario, key));
        }
        return answer;
    }
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse("", &chunk)
    };
    let mut events = vec![Event {
        text: chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null),
        delta: None,
    }];
    for (index, delta) in deltas.iter().enumerate() {
        events.push(Event { text: chunk(json!({"content": delta}), Value::Null), delta: Some(index) });
    }
    events.push(Event { text: chunk(json!({}), json!("stop")), delta: None });
    if include_usage {
        let last = json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake", "choices": [], "usage": chat_usage()
        });
        events.push(Event { text: sse("", &last), delta: None });
    }
    events.push(Event { text: "data: [DONE]\n\n".into(), delta: None });
    Answer {
        status: 200,
        headers: sse_headers(headers),
        body: AnswerBody::Planned(plan(events, scenario, key)),
    }
}

fn responses(
    body: &Value,
    model: &str,
    deltas: &[String],
    scenario: &Scenario,
    key: &str,
    headers: Vec<(String, String)>,
) -> Answer {
    let id = format!("resp_{}", id_suffix());
    let item_id = format!("msg_{}", id_suffix());
    let text = deltas.concat();
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    let item = |status: &str, content: Value| json!({"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content});
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": CREATED, "status": status, "error": null,
            "incomplete_details": null, "instructions": null, "max_output_tokens": null, "model": model,
            "output": output, "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": null, "metadata": {}
        })
    };
    let usage = json!({
        "input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS
    });
    let done_item = item("completed", json!([part(&text)]));
    if body["stream"] != json!(true) {
        let value = response("completed", json!([done_item]), usage);
        let mut answer = Answer::json(200, headers, &value);
        if *scenario == Scenario::Split {
            answer.body = AnswerBody::Planned(split_steps(value.to_string().into_bytes(), scenario, key));
        }
        return answer;
    }
    let mut sequence = 0u64;
    let mut event = |kind: &str, mut data: Value, delta: Option<usize>| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        Event { text: sse(kind, &data), delta }
    };
    let position = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
    let with = |extra: Value| {
        let mut value = position.clone();
        if let (Some(target), Value::Object(extra)) = (value.as_object_mut(), extra) {
            target.extend(extra);
        }
        value
    };
    let mut events = vec![
        event("response.created", json!({"response": response("in_progress", json!([]), Value::Null)}), None),
        event(
            "response.in_progress",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
            None,
        ),
        event(
            "response.output_item.added",
            json!({"output_index": 0, "item": item("in_progress", json!([]))}),
            None,
        ),
        event("response.content_part.added", with(json!({"part": part("")})), None),
    ];
    for (index, delta) in deltas.iter().enumerate() {
        events.push(event(
            "response.output_text.delta",
            with(json!({"delta": delta, "logprobs": []})),
            Some(index),
        ));
    }
    events.push(event("response.output_text.done", with(json!({"text": text, "logprobs": []})), None));
    events.push(event("response.content_part.done", with(json!({"part": part(&text)})), None));
    events.push(event("response.output_item.done", json!({"output_index": 0, "item": done_item}), None));
    events.push(event(
        "response.completed",
        json!({"response": response("completed", json!([done_item]), usage)}),
        None,
    ));
    Answer {
        status: 200,
        headers: sse_headers(headers),
        body: AnswerBody::Planned(plan(events, scenario, key)),
    }
}

/// One deterministic vector per input (8 dimensions unless `dimensions` says otherwise), as float
/// arrays or, with `encoding_format: "base64"` (the SDKs' default), base64 of little-endian f32.
fn embeddings(body: &Value, model: &str) -> Value {
    let inputs = match &body["input"] {
        Value::Array(items) if items.first().is_some_and(|first| !first.is_number()) => items.len(),
        _ => 1,
    };
    let dimensions = body["dimensions"].as_u64().unwrap_or(8) as usize;
    let base64 = body["encoding_format"] == json!("base64");
    let data: Vec<Value> = (0..inputs)
        .map(|index| {
            let vector: Vec<f32> = (0..dimensions).map(|j| ((index + 1) * (j + 1)) as f32 / 100.0).collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": INPUT_TOKENS, "total_tokens": INPUT_TOKENS}})
}
