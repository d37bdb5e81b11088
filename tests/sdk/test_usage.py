"""Metering: every request with a key leaves one usage record in the usage ledger — listed
by the key's own `GET /v1/usage` and by the operators' `GET /admin/usage` — with the
provider's token counts and the cost at the model's price (integer micro-USD, rounded half
up).

Prices of the test config (USD per 1M tokens): gpt-4o 2.5 in / 10 out / 1.25 cached;
claude-3-5-sonnet 3 / 15 / 0.3 cached / 3.75 cache writes; gemini-1-5-pro 1.25 / 5. Token
counts follow the emulator's rules (3 + words per message and system prompt; N completion
tokens; Anthropic's prompt cache with its 1,024-token minimum).
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal

import openai
import pytest
import requests


PRICES = {  # model: (input, output, cached_input, cache writes) in USD per 1M tokens
    "gpt-4o": ("2.5", "10", "1.25", "3.125"),
    "claude-3-5-sonnet": ("3", "15", "0.3", "3.75"),
    # no cached_input price: cached tokens (none here) at input
    "gemini-1-5-pro": ("1.25", "5", "1.25", "1.5625"),
}
USER_TEXT = "Say hello in one short sentence."
SYSTEM_TEXT = "You are a terse assistant."
# A system prompt long enough to be cached (1,100 words: 1,103 tokens ≥ Anthropic's 1,024),
# its first word unique to this run so that no other test's cache entry is found.
LONG_SYSTEM_TEXT = " ".join([f"run-{uuid.uuid4().hex}"] + ["rule"] * 1099)
WAIT_S = 10.0


def expected_cost(model: str, prompt: int, completion: int, cached: int = 0, written: int = 0) -> int:
    """tokens × price per 1M, in micro-USD, rounded half up."""
    price_in, price_out, price_cached, price_written = (Decimal(p) for p in PRICES[model])
    micro = (
        (prompt - cached - written) * price_in
        + cached * price_cached
        + written * price_written
        + completion * price_out
    )
    return int(micro.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def get_usage(gateway, key: str, query: str = "limit=1000") -> requests.Response:
    return requests.get(f"{gateway.base_url}/usage?{query}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def wait_for_records(gateway, key: str, request_ids: list[str]) -> dict:
    """The key's usage answer once it lists every one of `request_ids` (records are written
    off the request path, so they may lag the answer by a moment)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        resp = get_usage(gateway, key)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen = {r["request_id"] for r in body["data"]}
        missing = [r for r in request_ids if r not in seen]
        if not missing:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"no usage record within {WAIT_S:.0f}s for {missing}; the key has {len(seen)} records")
        time.sleep(0.05)


def by_id(body: dict) -> dict[str, dict]:
    return {r["request_id"]: r for r in body["data"]}


@pytest.fixture(scope="module")
def metered(gateway, client, anthropic_client):
    """A few requests with the test key, each with its x-request-id and expected record."""
    made: list[tuple[str, dict]] = []

    # gpt-4o, JSON: 9 prompt + 5 completion tokens → 9 × 2.5 + 5 × 10 = 72.5 → 73 micro-USD.
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": USER_TEXT}]
    )
    raw.parse()
    made.append((raw.headers["x-request-id"], dict(
        model="gpt-4o", provider="emu", endpoint="chat_completions", stream=False,
        prompt_tokens=9, completion_tokens=5, cached_tokens=0, cost_micro_usd=73,
    )))

    # gpt-4o, SSE without include_usage (the gateway still meters the provider's count):
    # 9 + 3 tokens → 22.5 + 30 = 52.5 → 53.
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": USER_TEXT}], stream=True,
        extra_headers={"x-emulator-chunks": "3"},
    )
    got = list(raw.parse())
    assert all(c.usage is None for c in got), "usage chunk the client did not ask for"
    made.append((raw.headers["x-request-id"], dict(
        model="gpt-4o", provider="emu", endpoint="chat_completions", stream=True,
        prompt_tokens=9, completion_tokens=3, cached_tokens=0, cost_micro_usd=53,
    )))

    # claude, native Anthropic with a cached system prompt, first seen: P = 1103 + 9 = 1112, of
    # it 1103 written to the cache; 5 completion → 9 × 3 + 1103 × 3.75 + 5 × 15 = 4238.25 → 4238.
    raw = anthropic_client.messages.with_raw_response.create(
        model="claude-3-5-sonnet", max_tokens=64,
        system=[{"type": "text", "text": LONG_SYSTEM_TEXT, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": USER_TEXT}],
    )
    msg = raw.parse()
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (
        9, 0, 1103)
    made.append((raw.headers["x-request-id"], dict(
        model="claude-3-5-sonnet", provider="emu-anthropic", endpoint="messages", stream=False,
        prompt_tokens=1112, completion_tokens=5, cached_tokens=0, cache_write_tokens=1103,
        cost_micro_usd=4238,
    )))

    # claude, native and streamed (message_start + message_delta), the same prefix read back:
    # 1112 (1103 cached) + 6 → 27 + 330.9 + 90 = 447.9 → 448.
    with anthropic_client.messages.stream(
        model="claude-3-5-sonnet", max_tokens=64,
        system=[{"type": "text", "text": LONG_SYSTEM_TEXT, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": USER_TEXT}],
        extra_headers={"x-emulator-chunks": "6"},
    ) as stream:
        stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    made.append((rid, dict(
        model="claude-3-5-sonnet", provider="emu-anthropic", endpoint="messages", stream=True,
        prompt_tokens=1112, completion_tokens=6, cached_tokens=1103, cost_micro_usd=448,
    )))

    # claude through the OpenAI SDK (translated): 17 + 5 → 51 + 75 = 126.
    raw = client.chat.completions.with_raw_response.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEXT}],
    )
    raw.parse()
    made.append((raw.headers["x-request-id"], dict(
        model="claude-3-5-sonnet", provider="emu-anthropic", endpoint="chat_completions", stream=False,
        prompt_tokens=17, completion_tokens=5, cached_tokens=0, cost_micro_usd=126,
    )))

    # gpt-4o through the Anthropic SDK (translated), streamed: 9 + 4 → 22.5 + 40 = 62.5 → 63.
    with anthropic_client.messages.stream(
        model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": USER_TEXT}],
        extra_headers={"x-emulator-chunks": "4"},
    ) as stream:
        stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    made.append((rid, dict(
        model="gpt-4o", provider="emu", endpoint="messages", stream=True,
        prompt_tokens=9, completion_tokens=4, cached_tokens=0, cost_micro_usd=63,
    )))

    # gemini: P = 17, 5 completion → 17 × 1.25 + 5 × 5 = 46.25 → 46.
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-1-5-pro",
        messages=[{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEXT}],
    )
    raw.parse()
    made.append((raw.headers["x-request-id"], dict(
        model="gemini-1-5-pro", provider="emu-gemini", endpoint="chat_completions", stream=False,
        prompt_tokens=17, completion_tokens=5, cached_tokens=0, cost_micro_usd=46,
    )))

    # gemini streamed, no include_usage: 9 + 2 → 11.25 + 10 = 21.25 → 21.
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-1-5-pro", messages=[{"role": "user", "content": USER_TEXT}], stream=True,
        extra_headers={"x-emulator-chunks": "2"},
    )
    list(raw.parse())
    made.append((raw.headers["x-request-id"], dict(
        model="gemini-1-5-pro", provider="emu-gemini", endpoint="chat_completions", stream=True,
        prompt_tokens=9, completion_tokens=2, cached_tokens=0, cost_micro_usd=21,
    )))

    for rid, exp in made:
        assert rid, "response without x-request-id"
        # The literal costs above are the price rule applied by hand; keep them honest.
        assert exp["cost_micro_usd"] == expected_cost(
            exp["model"], exp["prompt_tokens"], exp["completion_tokens"], exp["cached_tokens"],
            exp.get("cache_write_tokens", 0),
        )
    return made


def test_usage_records_match_requests(gateway, metered):
    body = wait_for_records(gateway, gateway.key, [rid for rid, _ in metered])
    assert body["object"] == "list"
    assert isinstance(body["data"], list)
    assert isinstance(body["totals"], dict)
    assert isinstance(body["by_model"], dict)
    records = by_id(body)
    key_ids = set()
    for rid, exp in metered:
        rec = records[rid]
        for field, value in exp.items():
            assert rec[field] == value, f"{rid} ({exp['model']}, {exp['endpoint']}): {field} = {rec[field]!r}, expected {value!r}"
        assert type(rec["cost_micro_usd"]) is int
        assert rec["status"] == 200
        assert rec["estimated"] is False, "the provider reported usage; nothing to estimate"
        assert rec["error"] is None
        assert isinstance(rec["timestamp_ms"], int) and rec["timestamp_ms"] > 0
        key_ids.add(rec["key_id"])
    assert len(key_ids) == 1, f"records of one key under several key ids: {key_ids}"
    (key_id,) = key_ids
    assert gateway.key not in key_id, "the key itself must not be the key id"


def test_usage_newest_first_and_totals_add_up(gateway, metered):
    body = wait_for_records(gateway, gateway.key, [rid for rid, _ in metered])
    data = body["data"]
    assert body["has_more"] is False
    stamps = [r["timestamp_ms"] for r in data]
    assert stamps == sorted(stamps, reverse=True), "records are not newest first"

    totals = body["totals"]
    assert totals["requests"] == len(data)
    for field in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_micro_usd"):
        assert totals[field] == sum(r[field] for r in data), field
        assert sum(m[field] for m in body["by_model"].values()) == totals[field], field
    assert totals["cost_usd"] == pytest.approx(totals["cost_micro_usd"] / 1e6)

    for model, t in body["by_model"].items():
        mine = [r for r in data if r["model"] == model]
        assert t["requests"] == len(mine), model
        assert t["cost_micro_usd"] == sum(r["cost_micro_usd"] for r in mine), model
    assert {"gpt-4o", "claude-3-5-sonnet", "gemini-1-5-pro"} <= set(body["by_model"])


def test_usage_limit(gateway, metered):
    wait_for_records(gateway, gateway.key, [rid for rid, _ in metered])
    resp = get_usage(gateway, gateway.key, "limit=2")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["data"]) == 2
    assert body["has_more"] is True
    assert body["totals"]["requests"] >= len(metered), "totals cover the whole range, not just the page"


def test_usage_is_per_key(gateway, metered, other_client):
    mine = wait_for_records(gateway, gateway.key, [rid for rid, _ in metered])
    raw = other_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": USER_TEXT}]
    )
    raw.parse()
    other_rid = raw.headers["x-request-id"]

    theirs = wait_for_records(gateway, gateway.other_key, [other_rid])
    their_ids = {r["request_id"] for r in theirs["data"]}
    my_ids = {r["request_id"] for r in mine["data"]}
    assert not (their_ids & my_ids), "one key sees another key's records"
    assert {r["key_id"] for r in theirs["data"]}.isdisjoint({r["key_id"] for r in mine["data"]})
    rec = by_id(theirs)[other_rid]
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["cost_micro_usd"]) == (9, 5, 73)
    assert theirs["totals"]["requests"] == len(theirs["data"])
    # by_model covers this key's own records only (refused requests, e.g. a model the key
    # may not use, are recorded too, at no cost)
    assert set(theirs["by_model"]) == {r["model"] for r in theirs["data"]}

    again = get_usage(gateway, gateway.key).json()
    assert other_rid not in {r["request_id"] for r in again["data"]}


def test_usage_requires_key(gateway):
    resp = requests.get(f"{gateway.base_url}/usage", timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    resp = requests.get(f"{gateway.base_url}/usage", headers={"Authorization": "Bearer cai-not-a-real-key"}, timeout=30)
    assert resp.status_code == 401


def test_usage_failed_request_costs_nothing(gateway, client):
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": USER_TEXT}],
            extra_headers={"x-emulator-status": "429"},
        )
    rid = ei.value.response.headers["x-request-id"]
    rec = by_id(wait_for_records(gateway, gateway.key, [rid]))[rid]
    assert rec["status"] == 429
    assert rec["cost_micro_usd"] == 0
    assert rec["completion_tokens"] == 0
    assert rec["error"], "a failed request is recorded with its error"


def test_usage_cut_stream_is_estimated(gateway, client):
    """A stream the provider cut reported no usage: the record holds the gateway's estimate
    of the prompt and of the text delivered, marked as such."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": USER_TEXT}], stream=True,
        extra_headers={"x-emulator-drop-after": "4"},
    )
    rid = raw.headers["x-request-id"]
    with pytest.raises(openai.APIError):
        list(raw.parse())
    rec = by_id(wait_for_records(gateway, gateway.key, [rid]))[rid]
    assert rec["estimated"] is True
    assert rec["error"], "a cut stream is recorded with its error"
    assert rec["stream"] is True
    assert rec["prompt_tokens"] > 0
    assert rec["completion_tokens"] > 0
    assert rec["cost_micro_usd"] == expected_cost("gpt-4o", rec["prompt_tokens"], rec["completion_tokens"])


def test_ledger_holds_one_record_per_request(gateway, metered):
    """The operators' view of the ledger (every key's records, all pages) holds each request
    once, as the key's own listing shows it, and the client key is nowhere in the ledger:
    not in its answers, its spool or its SQLite files."""
    ids = [rid for rid, _ in metered]
    api = by_id(wait_for_records(gateway, gateway.key, ids))
    records = gateway.ledger.records()
    assert records, "empty usage ledger"
    counts: dict[str, int] = {}
    for r in records:
        counts[r["request_id"]] = counts.get(r["request_id"], 0) + 1
    dupes = {rid: n for rid, n in counts.items() if n > 1}
    assert not dupes, f"requests recorded more than once: {dupes}"
    logged = {r["request_id"]: r for r in records}
    for rid in ids:
        assert rid in logged, f"{rid} missing from the ledger"
        assert logged[rid] == api[rid], f"/admin/usage and /v1/usage disagree on {rid}"
    assert gateway.key not in json.dumps(records), "client key in the usage records"
    stored = [f for f in gateway.ledger_dir.rglob("*") if f.is_file()]
    assert any(f.name.startswith("usage.db") for f in stored), f"no SQLite ledger in {gateway.ledger_dir}: {stored}"
    for f in stored:
        assert gateway.key.encode() not in f.read_bytes(), f"client key written to {f}"
