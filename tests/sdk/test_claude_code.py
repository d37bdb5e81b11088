"""Claude Code itself (the official CLI from npm) against the gateway: the base URL without
/v1 and a cai- key, on a Claude model (native passthrough), on OpenAI- and Gemini-format
models (translated), and on the cloud providers' models (Bedrock, Vertex AI, Azure OpenAI). Claude Code sends ~100 KB first requests with a system prompt in blocks
with cache_control, dozens of tools, metadata, anthropic-beta headers, mid-conversation
system messages and `?beta=true` paths, and streams the answer."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

EXPECTED = "Hello world1 world2 world3 world4"


def claude_bin() -> Path:
    path = os.environ.get("CLAUDE_CODE_BIN", "")
    if not path or not Path(path).is_file():
        pytest.fail("CLAUDE_CODE_BIN is not set to the claude CLI (scripts/test installs it from npm)")
    return Path(path)


@pytest.mark.parametrize(
    "model",
    [
        "claude-3-5-sonnet",
        "gpt-4o",
        "gemini-1-5-pro",
        # the clouds: Claude on Bedrock and Vertex (which refuse Claude Code's Anthropic-only
        # betas), Nova through Bedrock's Converse, Gemini on Vertex, GPT on Azure
        "claude-sonnet-4-5-bedrock",
        "claude-sonnet-4-5-vertex",
        "nova-pro-bedrock",
        "gemini-2.5-flash-vertex",
        "gpt-4o-azure",
    ],
)
def test_claude_code_prints_the_models_answer(gateway, tmp_path, model):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": gateway.root_url,
        "ANTHROPIC_AUTH_TOKEN": gateway.key,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    started_ms = int(time.time() * 1000)
    done = subprocess.run(
        [str(claude_bin()), "-p", "say hi", "--model", model],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == EXPECTED, done.stdout + done.stderr
    records = records_since(gateway, started_ms)
    assert records, "Claude Code's requests reached the gateway"
    for r in records:
        assert r["endpoint"] == "messages"
        assert r["model"] == model
        assert r["status"] == 200
        assert r["stream"] is True
        if model.startswith("claude-sonnet-4-5"):
            # Claude Code turns thinking on for this model: its words count as output too,
            # and it loops through a tool call, whose thinking block it sent back
            assert r["completion_tokens"] > 5, r
        else:
            assert r["completion_tokens"] == 5, r


def bare_env(tmp_path, root_url: str, key: str, **extra: str) -> dict:
    """The environment the service's docs give Claude Code users: two variables, nothing else
    (plus a private HOME and no calls home)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": root_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        **extra,
    }


def run_claude(env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(claude_bin()), "-p", "say hi"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def default_records(default_gateway, started_ms: int) -> list[dict]:
    seen, deadline = None, time.monotonic() + 5
    while time.monotonic() < deadline:
        records = [r for r in default_gateway.records() if r["timestamp_ms"] >= started_ms]
        if records and records == seen:
            return records
        seen = records
        time.sleep(0.2)
    return seen or []


def test_claude_code_with_no_model_works_on_the_default_config(default_gateway, tmp_path):
    """As the docs say: two variables, `claude`, no --model. Claude Code asks for its own
    default names (whatever this release picks); the `claude-*` route serves them."""
    started_ms = int(time.time() * 1000)
    done = run_claude(bare_env(tmp_path, default_gateway.root_url, default_gateway.key), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == EXPECTED, done.stdout + done.stderr
    records = default_records(default_gateway, started_ms)
    assert records, "Claude Code's requests reached the gateway"
    for r in records:
        assert r["model"].startswith("claude-"), r
        assert r["provider"] == "emulator-anthropic", r
        assert r["status"] == 200, r
        assert r["attempts"] == 1, r
        assert r["cost_micro_usd"] > 0, r


@pytest.mark.parametrize(
    "main, small, prices",
    [
        # current names, each priced exactly (USD per 1M tokens: input, cached input, output)
        (
            "claude-opus-5-5",
            "claude-haiku-5-5",
            {"claude-opus-5-5": (4.0, 0.20, 20.0), "claude-haiku-5-5": (0.10, 0.01, 0.50)},
        ),
        # names newer than the catalog: the `claude-*` pattern's price
        (
            "claude-opus-9-9",
            "claude-haiku-9-9",
            {"claude-opus-9-9": (10.0, 0.25, 50.0), "claude-haiku-9-9": (10.0, 0.25, 50.0)},
        ),
    ],
)
def test_claude_code_with_current_model_names(default_gateway, tmp_path, main, small, prices):
    started_ms = int(time.time() * 1000)
    env = bare_env(
        tmp_path,
        default_gateway.root_url,
        default_gateway.key,
        ANTHROPIC_MODEL=main,
        ANTHROPIC_SMALL_FAST_MODEL=small,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=small,
    )
    done = run_claude(env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == EXPECTED, done.stdout + done.stderr
    records = default_records(default_gateway, started_ms)
    assert any(r["model"] == main for r in records), records
    for r in records:
        assert r["model"] in prices, r
        price_in, price_cached, price_out = prices[r["model"]]
        written = r["cache_write_tokens"]  # Claude Code marks its prompt: 5-minute writes
        uncached = r["prompt_tokens"] - r["cached_tokens"] - written
        # the gateway's integer arithmetic: micro-USD per 1M tokens, rounded half up once;
        # cache writes at the default 1.25 × input
        total = (
            uncached * round(price_in * 1e6)
            + r["cached_tokens"] * round(price_cached * 1e6)
            + written * round(price_in * 1.25 * 1e6)
            + r["completion_tokens"] * round(price_out * 1e6)
        )
        expected = (total + 500_000) // 1_000_000
        assert r["cost_micro_usd"] == expected, r


def records_since(gateway, started_ms: int) -> list[dict]:
    """The records of requests that ended after `started_ms`, once no new one has appeared for
    a moment (the usage writer batches records for a few milliseconds)."""
    seen, deadline = None, time.monotonic() + 5
    while time.monotonic() < deadline:
        records = [r for r in usage(gateway) if r["timestamp_ms"] >= started_ms]
        if records and records == seen:
            return records
        seen = records
        time.sleep(0.2)
    return seen or []


def usage(gateway) -> list[dict]:
    r = requests.get(
        f"{gateway.base_url}/usage?limit=1000",
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]
