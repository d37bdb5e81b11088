"""Helpers shared by the SDK test modules: the emulator's deterministic rules (see the doc
comments of crates/emulator/src/lib.rs and its per-format modules) and recorder access."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import requests

# Default number of content chunks the emulator answers with (x-emulator-chunks).
DEFAULT_CHUNKS = 5


def chunk_text(i: int) -> str:
    """Chunk i of every emulated answer: "Hello", then " world1", " world2", ..."""
    return "Hello" if i == 0 else f" world{i}"


def chunks(n: int) -> list[str]:
    return [chunk_text(i) for i in range(n)]


def answer_text(n: int = DEFAULT_CHUNKS) -> str:
    """The whole answer text for n chunks: n = 5 gives "Hello world1 world2 world3 world4"."""
    return "".join(chunks(n))


def words(text: str) -> int:
    return len(text.split())


def turn_tokens(*texts: str) -> int:
    """Emulator prompt tokens: Σ over messages (and the system prompt) of 3 + words."""
    return sum(3 + words(t) for t in texts)


def json_body(recorded: dict) -> dict:
    """The JSON body the upstream received, from a recorder entry."""
    body = recorded["body"]
    if isinstance(body, (dict, list)):
        return body
    return json.loads(body)


def header_values(recorded: dict, name: str) -> list[str]:
    return [v for (k, v) in recorded["headers"] if k.lower() == name.lower()]


def recorded_path(recorded: dict) -> str:
    """The upstream path without the query string."""
    return urlsplit(recorded["path"]).path


def recorded_query(recorded: dict) -> str:
    return urlsplit(recorded["path"]).query


def seq_of(headers) -> str:
    seq = headers.get("x-emulator-seq")
    assert seq, f"no x-emulator-seq in response headers (upstream response headers not forwarded?): {dict(headers)}"
    return seq


def last_recorded(gateway, request_id: str) -> dict:
    """The emulator's most recent request, checked to be the one the gateway sent for
    `request_id` (the gateway forwards its x-request-id upstream). For answers that carry no
    x-emulator-seq (errors the gateway writes itself)."""
    resp = requests.get(f"{gateway.emulator_url}/_emulator/requests/last", timeout=10)
    assert resp.status_code == 200, f"recorder: {resp.status_code} {resp.text[:500]}"
    rec = resp.json()
    assert header_values(rec, "x-request-id") == [request_id], (
        f"the emulator's last request is not the one of {request_id}: {rec['headers']}"
    )
    return rec


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_client_key_not_upstream(gateway, rec: dict) -> None:
    for name, value in rec["headers"]:
        assert gateway.key not in value, f"client key forwarded upstream in header {name}"
    assert gateway.key not in str(rec.get("body", "")), "client key forwarded upstream in the body"
    assert gateway.key not in rec["path"], "client key forwarded upstream in the path"


def assert_openai_error(exc) -> dict:
    """An OpenAI-shaped error body with a message and a type, and the gateway's request id;
    returns the body."""
    body = exc.response.json()
    assert isinstance(body.get("error"), dict), f"not an OpenAI error body: {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"]
    assert "type" in body["error"]
    assert exc.response.headers.get("x-request-id"), "error response without x-request-id"
    return body
