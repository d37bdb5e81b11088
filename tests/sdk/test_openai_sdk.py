"""The official `openai` Python SDK against the real gateway (upstream: its emulator).

Each test checks what a user of the SDK would check; where the upstream side
matters, the emulator's recorder (GET /_emulator/requests/N, N from the
`x-emulator-seq` response header) shows what the provider actually received.
"""

from __future__ import annotations

import json

import openai
import pytest
import requests
from sdk_helpers import assert_openai_error, header_values, json_body

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]




def seq_of(headers) -> str:
    seq = headers.get("x-emulator-seq")
    assert seq, f"no x-emulator-seq in response headers (upstream response headers not forwarded?): {dict(headers)}"
    return seq


def collect(stream) -> list:
    return list(stream)


def content_of(chunks) -> str:
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


# 1. non-streaming chat ---------------------------------------------------------


def test_chat_completion(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id"), f"no x-request-id header: {dict(raw.headers)}"
    resp = raw.parse()

    assert isinstance(resp.model, str) and resp.model
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_completion_plain_call(client):
    """The everyday call, without with_raw_response."""
    resp = client.chat.completions.create(model="claude-3-5-sonnet", messages=MESSAGES)
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"


# 2. streaming chat -------------------------------------------------------------


def test_chat_stream(client):
    chunks = collect(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks, "stream yielded no chunks"
    assert content_of(chunks).strip(), "streamed content is empty"
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(isinstance(c.model, str) and c.model for c in chunks)
    # without include_usage no usage chunk is added
    assert all(c.choices for c in chunks)


def test_chat_stream_include_usage(client):
    chunks = collect(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert content_of(chunks).strip()
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "stop"


def test_chat_stream_chunk_count(client):
    chunks = collect(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-emulator-chunks": "7"}
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) == 7, f"expected 7 content deltas, got {len(deltas)}: {deltas!r}"


def test_chat_stream_raw_is_sse(gateway):
    """The wire format an SDK parses: text/event-stream ending in data: [DONE]."""
    resp = requests.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in resp.headers, "SSE must not be compressed"
    events = [line for line in resp.text.splitlines() if line.startswith("data:")]
    assert events[-1].strip() == "data: [DONE]"
    for line in events[:-1]:
        json.loads(line[len("data:"):])


# 3. embeddings -----------------------------------------------------------------


def test_embeddings_single(client, gateway):
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3", input="hello")
    resp = raw.parse()
    assert len(resp.data) == 1
    vec = resp.data[0].embedding
    assert isinstance(vec, list) and len(vec) > 0
    assert all(isinstance(x, float) for x in vec)
    assert resp.data[0].index == 0
    assert resp.usage.prompt_tokens > 0

    upstream = json_body(gateway.recorded(seq_of(raw.headers)))
    assert upstream["model"] == "text-embedding-3-small"
    assert upstream["input"] == "hello"


def test_embeddings_batch(client, gateway):
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3", input=["a", "b", "c"])
    resp = raw.parse()
    assert len(resp.data) == 3
    assert sorted(d.index for d in resp.data) == [0, 1, 2]
    dims = {len(d.embedding) for d in resp.data}
    assert len(dims) == 1 and dims.pop() > 0
    for d in resp.data:
        assert all(isinstance(x, float) for x in d.embedding)

    upstream = json_body(gateway.recorded(seq_of(raw.headers)))
    assert upstream["model"] == "text-embedding-3-small"
    assert upstream["input"] == ["a", "b", "c"]


def test_embeddings_float_format(client):
    resp = client.embeddings.create(model="text-embedding-3", input="hello", encoding_format="float")
    assert len(resp.data) == 1
    assert all(isinstance(x, float) for x in resp.data[0].embedding)


# 4. models ---------------------------------------------------------------------


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o", "claude-3-5-sonnet", "text-embedding-3"} <= ids


def test_models_list_limited_key(other_client):
    ids = [m.id for m in other_client.models.list()]
    assert ids == ["gpt-4o"]


# 5. errors ---------------------------------------------------------------------


def test_error_bad_key(gateway):
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="cai-not-a-real-key", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert ei.value.status_code == 401
    assert ei.value.code == "invalid_api_key"
    assert_openai_error(ei.value)


def test_error_missing_key(gateway):
    resp = requests.post(
        f"{gateway.base_url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, timeout=30
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_error_model_not_allowed(other_client):
    with pytest.raises(openai.PermissionDeniedError) as ei:
        other_client.chat.completions.create(model="claude-3-5-sonnet", messages=MESSAGES)
    assert ei.value.status_code == 403
    assert_openai_error(ei.value)


def test_error_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert ei.value.status_code == 404
    assert ei.value.code == "model_not_found"
    assert_openai_error(ei.value)


def test_error_bad_body(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"messages": "x"})
    assert ei.value.status_code == 400
    assert ei.value.param == "messages"
    assert_openai_error(ei.value)


@pytest.mark.parametrize(
    "status, error_class",
    [(429, openai.RateLimitError), (500, openai.InternalServerError)],
    ids=["429", "500"],
)
def test_error_upstream_status(client, status, error_class):
    with pytest.raises(error_class) as ei:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-emulator-status": str(status)}
        )
    assert ei.value.status_code == status
    assert_openai_error(ei.value)


def test_error_upstream_429_streaming(client):
    """An upstream error before the first byte is a real HTTP error, not a 200 stream."""
    with pytest.raises(openai.RateLimitError):
        collect(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-emulator-status": "429"}
            )
        )


# 6. keys: the client key stays at the gateway, the provider key stays upstream -----


def test_upstream_gets_provider_key_not_client_key(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    rec = gateway.recorded(seq_of(raw.headers))
    assert header_values(rec, "authorization") == [f"Bearer {gateway.provider_key}"]
    for name, value in rec["headers"]:
        assert gateway.key not in value, f"client key forwarded upstream in header {name}"
    assert gateway.key not in str(rec.get("body", ""))
    assert json_body(rec)["model"] == "gpt-4o"


def test_upstream_gets_provider_key_streaming(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seq = seq_of(raw.headers)
    collect(raw.parse())
    rec = gateway.recorded(seq)
    assert header_values(rec, "authorization") == [f"Bearer {gateway.provider_key}"]
    for name, value in rec["headers"]:
        assert gateway.key not in value, f"client key forwarded upstream in header {name}"


def _assert_no_provider_key(gateway, resp: requests.Response, what: str) -> None:
    secret = gateway.provider_key
    for name, value in resp.headers.items():
        assert secret not in value, f"{what}: provider key leaked in response header {name}"
    assert secret.encode() not in resp.content, f"{what}: provider key leaked in response body"


@pytest.mark.parametrize(
    "what,method,path,body,extra",
    [
        ("chat", "POST", "/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}, {}),
        ("stream", "POST", "/chat/completions",
         {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, {}),
        ("embeddings", "POST", "/embeddings", {"model": "text-embedding-3", "input": ["a", "b"]}, {}),
        ("models", "GET", "/models", None, {}),
        ("upstream 429", "POST", "/chat/completions",
         {"model": "gpt-4o", "messages": MESSAGES}, {"x-emulator-status": "429"}),
        ("upstream 401", "POST", "/chat/completions",
         {"model": "gpt-4o", "messages": MESSAGES}, {"x-emulator-status": "401"}),
        ("upstream 500", "POST", "/chat/completions",
         {"model": "gpt-4o", "messages": MESSAGES}, {"x-emulator-status": "500"}),
        ("unknown model", "POST", "/chat/completions", {"model": "nope", "messages": MESSAGES}, {}),
    ],
)
def test_provider_key_never_reaches_client(gateway, what, method, path, body, extra):
    headers = {"Authorization": f"Bearer {gateway.key}", **extra}
    resp = requests.request(method, gateway.base_url + path, headers=headers, json=body, timeout=30)
    assert resp.status_code < 600
    _assert_no_provider_key(gateway, resp, what)
    assert gateway.key.encode() not in resp.content, f"{what}: client key echoed in response body"


# 7. health ---------------------------------------------------------------------


def test_health(gateway):
    assert requests.get(gateway.admin_url + "/health", timeout=10).status_code == 200
