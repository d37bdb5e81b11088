"""Claude Code itself (the official CLI from npm) against the gateway: the base URL without
/v1 and a cai- key, on a Claude model (native passthrough) and on OpenAI- and Gemini-format
models (translated). Claude Code sends ~100 KB first requests with a system prompt in blocks
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


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "gpt-4o", "gemini-1-5-pro"])
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
        assert r["completion_tokens"] == 5


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
