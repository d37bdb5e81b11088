"""The repository's own conf/gateway.toml, used as a new user would: the names today's
clients send by default route by pattern, are priced, and a name nothing serves is a 404
whose log line and usage record name it."""

from __future__ import annotations

import time

import pytest


def records_for(default_gateway, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for r in default_gateway.records():
            if r["request_id"] == request_id:
                return r
        time.sleep(0.05)
    pytest.fail(f"no usage record for {request_id}")


@pytest.fixture()
def openai_default(default_gateway):
    from openai import OpenAI

    c = OpenAI(base_url=default_gateway.root_url + "/v1", api_key=default_gateway.key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.mark.parametrize(
    "model, route_price",
    [
        ("gpt-6.1-sol", (2.0, 10.0)),  # Codex CLI 0.169's default, listed exactly
        ("gpt-7-nova", (10.0, 50.0)),  # newer than the catalog: the gpt-* pattern
        ("o5-mini", (15.0, 60.0)),  # the o* pattern
        ("gemini-9-ultra", (4.0, 20.0)),  # the gemini-* pattern (translated to Gemini)
    ],
)
def test_openai_sdk_on_default_and_new_names(default_gateway, openai_default, model, route_price):
    raw = openai_default.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello world1 world2 world3 world4"
    record = records_for(default_gateway, raw.headers["x-request-id"])
    assert record["model"] == model
    assert record["status"] == 200
    price_in, price_out = route_price
    expected = round(record["prompt_tokens"] * price_in + record["completion_tokens"] * price_out)
    assert record["cost_micro_usd"] == expected, record


def test_a_name_nothing_serves_is_404_and_logged_by_its_name(default_gateway, openai_default):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        openai_default.chat.completions.create(
            model="mistral-large-9", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    request_id = caught.value.response.headers["x-request-id"]
    record = records_for(default_gateway, request_id)
    assert record["model"] == "mistral-large-9"
    assert record["status"] == 404
    assert record["cost_micro_usd"] == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [l for l in default_gateway.log_path.read_text().splitlines() if request_id in l]
        if lines:
            break
        time.sleep(0.05)
    assert lines and "status=404" in lines[0] and "model=mistral-large-9" in lines[0], lines
