"""An agent that uses the official OpenAI Python SDK exactly as a real one would: it reads
OPENAI_BASE_URL and OPENAI_API_KEY from the environment (the SDK's own defaults), calls the API
selected by SCENARIO and prints ONE JSON object of what the SDK returned. See README.md."""

import json
import os
import sys

import openai

SCENARIO = os.environ.get("SCENARIO", "chat")
MODEL = os.environ.get("MODEL")
PROMPT = os.environ.get("PROMPT", "Say hello.")
# Text deltas of a stream as they arrive: reported as "streamed" when the stream fails midway.
STREAMED = []


def delta_arrived(text):
    """Records a streamed text delta; with ANNOUNCE_FIRST_DELTA=1 the first one is also written to
    stderr at once (one JSON line), so a test can see it arrive while the stream is still open."""
    if not STREAMED and os.environ.get("ANNOUNCE_FIRST_DELTA") == "1":
        print(json.dumps({"first_delta": text}), file=sys.stderr, flush=True)
    STREAMED.append(text)


def client() -> openai.OpenAI:
    # base_url and api_key come from OPENAI_BASE_URL / OPENAI_API_KEY, read by the SDK itself.
    return openai.OpenAI(
        max_retries=int(os.environ.get("MAX_RETRIES", "0")),
        timeout=float(os.environ.get("TIMEOUT_SECONDS", "60")),
    )


def usage_of(usage, *names):
    if usage is None:
        return None
    return {name: getattr(usage, name, None) for name in names}


def chat(c):
    completion = c.chat.completions.create(
        model=MODEL or "gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
    )
    choice = completion.choices[0]
    return {
        "id": completion.id,
        "model": completion.model,
        "content": choice.message.content,
        "finish_reason": choice.finish_reason,
        "usage": usage_of(completion.usage, "prompt_tokens", "completion_tokens", "total_tokens"),
        "request_id": completion._request_id,
    }


def chat_stream(c):
    include_usage = os.environ.get("INCLUDE_USAGE", "1") == "1"
    stream = c.chat.completions.create(
        model=MODEL or "gpt-4o-mini",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
    )
    content, chunks, usage, ids, finish = [], 0, None, set(), None
    for chunk in stream:
        chunks += 1
        ids.add(chunk.id)
        for choice in chunk.choices:
            if choice.delta.content:
                delta_arrived(choice.delta.content)
                content.append(choice.delta.content)
            finish = choice.finish_reason or finish
        if chunk.usage is not None:
            usage = usage_of(chunk.usage, "prompt_tokens", "completion_tokens", "total_tokens")
    return {
        "id": ids.pop() if len(ids) == 1 else sorted(ids),
        "content": "".join(content),
        "chunks": chunks,
        "finish_reason": finish,
        "usage": usage,
        "request_id": stream.response.headers.get("x-request-id"),
    }


def responses(c):
    response = c.responses.create(model=MODEL or "gpt-4o-mini", input=PROMPT)
    return {
        "id": response.id,
        "status": response.status,
        "content": response.output_text,
        "usage": usage_of(response.usage, "input_tokens", "output_tokens", "total_tokens"),
        "request_id": response._request_id,
    }


def responses_stream(c):
    stream = c.responses.create(model=MODEL or "gpt-4o-mini", input=PROMPT, stream=True)
    content, events, final = [], [], None
    for event in stream:
        events.append(event.type)
        if event.type == "response.output_text.delta":
            delta_arrived(event.delta)
            content.append(event.delta)
        elif event.type == "response.completed":
            final = event.response
    return {
        "id": final.id if final else None,
        "status": final.status if final else None,
        "content": "".join(content),
        "final_text": final.output_text if final else None,
        "events": events,
        "usage": usage_of(final.usage if final else None, "input_tokens", "output_tokens", "total_tokens"),
        "request_id": stream.response.headers.get("x-request-id"),
    }


def embeddings(c):
    result = c.embeddings.create(model=MODEL or "text-embedding-3-small", input=[PROMPT, PROMPT + " again"])
    return {
        "model": result.model,
        "count": len(result.data),
        "dimensions": len(result.data[0].embedding),
        "first": [round(x, 6) for x in result.data[0].embedding],
        "usage": usage_of(result.usage, "prompt_tokens", "total_tokens"),
    }


def models(c):
    return {"ids": [model.id for model in c.models.list()]}


SCENARIOS = {
    "chat": chat,
    "chat_stream": chat_stream,
    "responses": responses,
    "responses_stream": responses_stream,
    "embeddings": embeddings,
    "models": models,
}


def main() -> int:
    if SCENARIO not in SCENARIOS:
        print(json.dumps({"ok": False, "error": {"class": "UnknownScenario", "message": SCENARIO}}))
        return 2
    try:
        result = SCENARIOS[SCENARIO](client())
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
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
    except Exception as error:  # noqa: BLE001 — APIConnectionError, or a stream cut while read (httpx)
        print(json.dumps({"ok": False, "scenario": SCENARIO, "streamed": "".join(STREAMED),
                          "error": {"class": type(error).__name__, "message": str(error)}}))
        return 3
    print(json.dumps({"ok": True, "scenario": SCENARIO, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
