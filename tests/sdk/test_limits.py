"""Rate limits as the official openai SDK experiences them: a 429 with Retry-After that the
SDK honours, retrying exactly when the window frees a slot."""

from __future__ import annotations

import time

import openai
import pytest
import requests

from conftest import RATE_LIMITED_KEY

try:  # openai >= 3 ships its HTTP client as httpx2; older releases use httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx


def test_sdk_honours_retry_after_then_raises_rate_limit_error(gateway):
    """The key allows 1 request per minute. The SDK (max_retries=2) is refused, waits the
    Retry-After the gateway sent, and retries. Just before each retry another client takes
    the slot that has just freed (and gets a 200, which proves Retry-After was exact), so the
    retry is refused again; after two retries the SDK raises RateLimitError. The whole call
    therefore lasts at least the two Retry-After delays."""
    url = f"{gateway.base_url}/chat/completions"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {RATE_LIMITED_KEY}"}
    first = requests.post(url, json=body, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"

    taken: list[int] = []
    delays: list[float] = []

    def take_freed_slot(request: httpx.Request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            taken.append(requests.post(url, json=body, headers=headers, timeout=30).status_code)

    def note_delay(response: httpx.Response) -> None:
        if response.status_code == 429:
            delays.append(float(response.headers["retry-after"]))

    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key=RATE_LIMITED_KEY,
        max_retries=2,
        timeout=30,
        http_client=httpx.Client(event_hooks={"request": [take_freed_slot], "response": [note_delay]}),
    )
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**body)
    elapsed = time.monotonic() - started

    assert caught.value.status_code == 429
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert len(delays) == 3, delays  # the first try and two retries
    assert taken == [200, 200], "the slot was free exactly when Retry-After said"
    assert elapsed >= delays[0] + delays[1] - 1, (elapsed, delays)
    assert all(1 <= d <= 60 for d in delays), delays
