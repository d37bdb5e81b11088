"""Claude Code itself (the official CLI from npm) against the gateway: the base URL without
/v1 and a cai- key, on a Claude model (native passthrough) and on OpenAI- and Gemini-format
models (translated). Claude Code sends ~100 KB first requests with a system prompt in blocks
with cache_control, dozens of tools, metadata, anthropic-beta headers, mid-conversation
system messages and `?beta=true` paths, and streams the answer."""

from __future__ import annotations

import os
import subprocess
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
    before = usage_count(gateway)
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
    records = new_records(gateway, before)
    assert records, "Claude Code's requests reached the gateway"
    for r in records:
        assert r["endpoint"] == "messages"
        assert r["model"] == model
        assert r["status"] == 200
        assert r["stream"] is True
        assert r["completion_tokens"] == 5


def usage_count(gateway) -> int:
    return len(usage(gateway))


def new_records(gateway, before: int) -> list[dict]:
    records = usage(gateway)
    return records[: len(records) - before]


def usage(gateway) -> list[dict]:
    r = requests.get(
        f"{gateway.base_url}/usage?limit=1000",
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]
