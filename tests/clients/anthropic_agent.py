"""An agent that uses the official Anthropic Python SDK exactly as a real one would: it reads
ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY from the environment (the SDK's own defaults), calls the API
selected by SCENARIO and prints ONE JSON object of what the SDK returned. See README.md."""

import json
import os
import sys

import anthropic

SCENARIO = os.environ.get("SCENARIO", "messages")
MODEL = os.environ.get("MODEL", "claude-sonnet-4-5")
PROMPT = os.environ.get("PROMPT", "Say hello.")
MESSAGES = [{"role": "user", "content": PROMPT}]


def client() -> anthropic.Anthropic:
    # base_url and api_key come from ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY, read by the SDK itself.
    return anthropic.Anthropic(
        max_retries=int(os.environ.get("MAX_RETRIES", "0")),
        timeout=float(os.environ.get("TIMEOUT_SECONDS", "60")),
    )


def messages(c):
    message = c.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    return {
        "id": message.id,
        "model": message.model,
        "content": "".join(block.text for block in message.content if block.type == "text"),
        "stop_reason": message.stop_reason,
        "usage": {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens},
        "request_id": message._request_id,
    }


def messages_stream(c):
    stream = c.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    content, events, message_id, stop_reason = [], [], None, None
    usage = {"input_tokens": None, "output_tokens": None}
    for event in stream:
        events.append(event.type)
        if event.type == "message_start":
            message_id = event.message.id
            usage["input_tokens"] = event.message.usage.input_tokens
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            content.append(event.delta.text)
        elif event.type == "message_delta":
            usage["output_tokens"] = event.usage.output_tokens
            stop_reason = event.delta.stop_reason
    return {
        "id": message_id,
        "content": "".join(content),
        "events": events,
        "stop_reason": stop_reason,
        "usage": usage,
        "request_id": stream.response.headers.get("request-id"),
    }


def count_tokens(c):
    result = c.messages.count_tokens(model=MODEL, messages=MESSAGES)
    return {"input_tokens": result.input_tokens, "request_id": result._request_id}


def models(c):
    return {"ids": [model.id for model in c.models.list()]}


SCENARIOS = {
    "messages": messages,
    "messages_stream": messages_stream,
    "count_tokens": count_tokens,
    "models": models,
}


def main() -> int:
    if SCENARIO not in SCENARIOS:
        print(json.dumps({"ok": False, "error": {"class": "UnknownScenario", "message": SCENARIO}}))
        return 2
    try:
        result = SCENARIOS[SCENARIO](client())
    except anthropic.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error") if isinstance(body.get("error"), dict) else {}
        print(json.dumps({"ok": False, "scenario": SCENARIO, "error": {
            "class": type(error).__name__,
            "status": error.status_code,
            "type": detail.get("type"),
            "code": detail.get("code"),
            "message": error.message,
            "body": error.body,
            "request_id": error.request_id,
            "retry_after": error.response.headers.get("retry-after"),
            "steward_error": error.response.headers.get("steward-error"),
        }}))
        return 3
    except anthropic.APIError as error:
        print(json.dumps({"ok": False, "scenario": SCENARIO,
                          "error": {"class": type(error).__name__, "message": str(error)}}))
        return 3
    print(json.dumps({"ok": True, "scenario": SCENARIO, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
