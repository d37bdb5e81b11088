"""Fixtures for the SDK tests: one real gateway process for the whole session.

The gateway binary comes from $CHEAPAI_BIN (scripts/test sets it to the release
build). It runs with a generated config on free loopback ports, with its
in-process emulator as the only upstream provider, and its usage ledger (spool
and SQLite store) in the session's temp dir; tests read usage records back as an
operator does, through `GET /admin/usage`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

# Everything here talks to loopback only; never route it through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))

# Client-side settings of the official SDKs must not leak into the tests (a stray
# ANTHROPIC_API_KEY would add an x-api-key header to the auth_token client, say).
for _var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
    os.environ.pop(_var, None)

PROVIDER_KEY = "sk-provider-secret"
# A key allowed one request per minute (tests/sdk/test_limits.py).
RATE_LIMITED_KEY = "cai-one-request-per-minute-" + secrets.token_hex(8)
# A second tenant allowed every model: what one key's conversations leave must not reach it.
SECOND_TENANT_KEY = "cai-second-tenant-" + secrets.token_hex(8)
PROVIDER_KEY_ENV = "CHEAPAI_TEST_PROVIDER_KEY"
ANTHROPIC_PROVIDER_KEY = "sk-ant-provider-secret"
ANTHROPIC_PROVIDER_KEY_ENV = "CHEAPAI_TEST_ANTHROPIC_KEY"
GEMINI_PROVIDER_KEY = "gemini-provider-secret"
GEMINI_PROVIDER_KEY_ENV = "CHEAPAI_TEST_GEMINI_KEY"
# The one key the emulator's Azure OpenAI routes accept (cheapai_emulator::AZURE_API_KEY).
AZURE_PROVIDER_KEY = "emulator-azure-key"
AZURE_PROVIDER_KEY_ENV = "CHEAPAI_TEST_AZURE_KEY"
AZURE_API_VERSION = "2025-04-01-preview"
# The AWS key the emulator's Bedrock routes verify signatures with
# (cheapai_emulator::BEDROCK_ACCESS_KEY_ID / BEDROCK_SECRET_ACCESS_KEY).
BEDROCK_ACCESS_KEY_ID = "AKIDEMULATORBEDROCK"
BEDROCK_SECRET_ACCESS_KEY = "emulator-bedrock-secret-key"
ADMIN_TOKEN_ENV = "CHEAPAI_TEST_ADMIN_TOKEN"
# The variable naming the Vertex AI service account's key file (a throwaway key made with
# openssl per session), and the one the in-process emulator reads its public key from.
VERTEX_CREDENTIALS_ENV = "CHEAPAI_TEST_VERTEX_CREDENTIALS"
VERTEX_EMULATOR_KEY_ENV = "CHEAPAI_EMULATOR_VERTEX_PUBLIC_KEY"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 80
# How long a usage record may take to reach the ledger: the shipper delivers within
# milliseconds; this only bounds a failing test.
RECORD_TIMEOUT_S = 10.0
POLL_S = 0.05


@dataclasses.dataclass
class UsageLedger:
    """A gateway's usage ledger as operators read it: `GET /admin/usage` with the admin token.
    Records reach it from the spool a moment after their request ends, so readers poll."""

    admin_url: str
    admin_token: str

    def page(self, query: dict[str, str]) -> dict:
        resp = requests.get(
            f"{self.admin_url}/admin/usage",
            params=query,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        assert resp.status_code == 200, f"/admin/usage: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def records(self) -> list[dict]:
        """Every record of every key in the ledger, newest first (all pages)."""
        query = {"limit": "1000"}
        records: list[dict] = []
        while True:
            body = self.page(query)
            records.extend(body["data"])
            if not body["has_more"]:
                return records
            query["after"] = body["next"]

    def record_of(self, request_id: str) -> dict:
        """The record of `request_id`, once it has reached the ledger."""
        deadline = time.monotonic() + RECORD_TIMEOUT_S
        while True:
            for r in self.records():
                if r["request_id"] == request_id:
                    return r
            if time.monotonic() > deadline:
                pytest.fail(f"no usage record for {request_id} in the ledger within {RECORD_TIMEOUT_S:.0f}s")
            time.sleep(POLL_S)


@dataclasses.dataclass
class Gateway:
    base_url: str  # http://127.0.0.1:PORT/v1, what SDK users configure
    root_url: str  # http://127.0.0.1:PORT
    admin_url: str  # http://127.0.0.1:ADMINPORT
    emulator_url: str  # http://127.0.0.1:EMUPORT (upstream emulator root)
    key: str  # client key allowed every model
    other_key: str  # client key allowed only gpt-4o
    provider_key: str  # what the gateway must send upstream (OpenAI-format provider `emu`)
    anthropic_provider_key: str  # ... to the Anthropic-format provider `emu-anthropic`
    gemini_provider_key: str  # ... to the Gemini provider `emu-gemini`
    azure_provider_key: str  # ... to the Azure OpenAI provider `emu-azure` (in `api-key`)
    config_path: Path
    ledger_dir: Path  # [usage]: the spool (spool/) and the SQLite store (usage.db)
    ledger: UsageLedger
    log_path: Path
    process: subprocess.Popen

    def recorded(self, seq: int | str) -> dict:
        """What the upstream emulator received for request number `seq`."""
        resp = requests.get(f"{self.emulator_url}/_emulator/requests/{seq}", timeout=10)
        assert resp.status_code == 200, f"recorder: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no gateway log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: bind port 0 (all at once), read, close."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def render_config(port: int, admin_port: int, emu_port: int, key: str, other_key: str, ledger_dir: Path) -> str:
    return f"""\
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
threads = 2
max_body_bytes = 10485760
grace_period_seconds = 5
admin_token_env = "{ADMIN_TOKEN_ENV}"

[usage]
spool_dir = "{ledger_dir / 'spool'}"
store = "sqlite:{ledger_dir / 'usage.db'}"

[emulator]
listen = "127.0.0.1:{emu_port}"

[providers.emu]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{emu_port}/v1"
api_key_env = "{PROVIDER_KEY_ENV}"
# tests inject provider failures on purpose: the circuit must not open between tests
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[providers.emu-native]               # an OpenAI-format host serving /v1/responses itself
kind = "openai_compatible"
base_url = "http://127.0.0.1:{emu_port}/v1"
api_key_env = "{PROVIDER_KEY_ENV}"
native_responses = true

[providers.emu-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{emu_port}"
api_key_env = "{ANTHROPIC_PROVIDER_KEY_ENV}"
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[providers.emu-gemini]
kind = "gemini"
base_url = "http://127.0.0.1:{emu_port}/v1beta"
api_key_env = "{GEMINI_PROVIDER_KEY_ENV}"
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[providers.emu-azure]
kind = "azure"
base_url = "http://127.0.0.1:{emu_port}"
api_key_env = "{AZURE_PROVIDER_KEY_ENV}"
api_version = "{AZURE_API_VERSION}"
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[providers.emu-bedrock]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{emu_port}"
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[models."gpt-4o"]
provider = "emu"
price = {{ input = 2.5, output = 10.0, cached_input = 1.25 }}

[models."gpt-4o-azure"]                # upstream_model: the Azure deployment's name
provider = "emu-azure"
upstream_model = "gpt-4o-eu"
price = {{ input = 2.5, output = 10.0, cached_input = 1.25 }}

[models."claude-sonnet-4-5-bedrock"]    # upstream_model: the Bedrock model id
provider = "emu-bedrock"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
price = {{ input = 3.0, output = 15.0, cached_input = 0.3 }}

[models."nova-pro-bedrock"]             # a model other than Claude: Bedrock's Converse API
provider = "emu-bedrock"
upstream_model = "amazon.nova-pro-v1:0"
price = {{ input = 0.8, output = 3.2 }}

[models."text-embedding-3-azure"]
provider = "emu-azure"
upstream_model = "text-embedding-3-small"

[models."titan-embed-bedrock"]          # one text per request
provider = "emu-bedrock"
upstream_model = "amazon.titan-embed-text-v2:0"
price = {{ input = 0.02, output = 0.0 }}

[models."cohere-embed-bedrock"]         # batches of up to 96
provider = "emu-bedrock"
upstream_model = "cohere.embed-english-v3"
price = {{ input = 0.10, output = 0.0 }}

[models."gpt-native"]
provider = "emu-native"
price = {{ input = 2.5, output = 10.0 }}

[models."claude-3-5-sonnet"]
provider = "emu-anthropic"
upstream_model = "claude-3-5-sonnet-20241022"
price = {{ input = 3.0, output = 15.0, cached_input = 0.3 }}

[models."claude-sonnet-4-5"]          # reasoning tool loops (test_reasoning.py)
provider = "emu-anthropic"
price = {{ input = 3.0, output = 15.0, cached_input = 0.3 }}

[models."gemini-3-pro"]
provider = "emu-gemini"
upstream_model = "gemini-3-pro-preview"
price = {{ input = 2.0, output = 12.0 }}

[models."gemini-1-5-pro"]
provider = "emu-gemini"
upstream_model = "gemini-1.5-pro"
price = {{ input = 1.25, output = 5.0 }}

[models."text-embedding-004"]
provider = "emu-gemini"

[models."text-embedding-3"]
provider = "emu"
upstream_model = "text-embedding-3-small"

[[keys]]
name = "sdk-test"
sha256 = "{sha256_hex(key)}"
models = ["*"]

[[keys]]
name = "limited"
sha256 = "{sha256_hex(other_key)}"
models = ["gpt-4o"]

[[keys]]
name = "second-tenant"
sha256 = "{sha256_hex(SECOND_TENANT_KEY)}"
models = ["*"]

[[keys]]
name = "one-per-minute"
sha256 = "{sha256_hex(RATE_LIMITED_KEY)}"
limits = {{ rpm = 1 }}
"""


def render_vertex_config(emu_port: int) -> str:
    """A Vertex AI provider on the emulator, with Claude, Gemini and text embedding models
    (test_vertex.py)."""
    return f"""
[providers.emu-vertex]
kind = "vertex"
base_url = "http://127.0.0.1:{emu_port}"
project = "my-project"
region = "us-east5"
credentials_file_env = "{VERTEX_CREDENTIALS_ENV}"
breaker = {{ failures = 1000000, open_ms = 1 }}
connect_timeout_ms = 2000
first_byte_timeout_ms = 10000
idle_timeout_ms = 5000

[models."claude-sonnet-4-5-vertex"]   # upstream_model: Vertex's versioned Claude name
provider = "emu-vertex"
upstream_model = "claude-sonnet-4-5@20250929"
price = {{ input = 3.0, output = 15.0, cached_input = 0.3 }}

[models."gemini-2.5-flash-vertex"]
provider = "emu-vertex"
upstream_model = "gemini-2.5-flash"
price = {{ input = 0.3, output = 2.5 }}

[models."gemini-3-pro-vertex"]        # thought signatures on function calls
provider = "emu-vertex"
upstream_model = "gemini-3-pro-preview"
price = {{ input = 2.0, output = 12.0 }}

[models."text-embedding-005-vertex"]  # `:predict`, up to 250 texts per request
provider = "emu-vertex"
upstream_model = "text-embedding-005"
price = {{ input = 0.10, output = 0.0 }}
"""


def vertex_env(tmp: Path, emu_port: int) -> dict:
    """A throwaway service account: its key file (its token_uri the emulator's) for the
    gateway, its public key for the emulator to verify the gateway's assertions with."""
    private = tmp / "vertex-key.pem"
    public = tmp / "vertex-key.pub.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)],
        check=True, capture_output=True,
    )
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True, capture_output=True)
    key_file = tmp / "vertex-service-account.json"
    key_file.write_text(json.dumps({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "sdk-test-key",
        "private_key": private.read_text(),
        "client_email": "gateway@my-project.iam.gserviceaccount.com",
        "token_uri": f"http://127.0.0.1:{emu_port}/token",
    }))
    return {VERTEX_CREDENTIALS_ENV: str(key_file), VERTEX_EMULATOR_KEY_ENV: str(public)}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _gateway_bin() -> Path:
    raw = os.environ.get("CHEAPAI_BIN")
    if not raw:
        pytest.fail(
            "CHEAPAI_BIN is not set: point it at the built gateway binary, e.g. "
            "CHEAPAI_BIN=target/release/cheapai-gateway (scripts/test does this)",
            pytrace=False,
        )
    path = Path(raw).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"CHEAPAI_BIN={raw} is not an executable file (build it with cargo build --release)", pytrace=False)
    return path


_current: Gateway | None = None


def gateway_env(admin_token: str) -> dict:
    """The environment a gateway on `render_config`'s config runs with: the secrets it names."""
    env = dict(os.environ)
    env[ADMIN_TOKEN_ENV] = admin_token
    env[PROVIDER_KEY_ENV] = PROVIDER_KEY
    env[ANTHROPIC_PROVIDER_KEY_ENV] = ANTHROPIC_PROVIDER_KEY
    env[GEMINI_PROVIDER_KEY_ENV] = GEMINI_PROVIDER_KEY
    env[AZURE_PROVIDER_KEY_ENV] = AZURE_PROVIDER_KEY
    env["AWS_ACCESS_KEY_ID"] = BEDROCK_ACCESS_KEY_ID
    env["AWS_SECRET_ACCESS_KEY"] = BEDROCK_SECRET_ACCESS_KEY
    env.pop("AWS_SESSION_TOKEN", None)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    return env


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Gateway:
    global _current
    binary = _gateway_bin()
    tmp = tmp_path_factory.mktemp("gateway")
    key = "cai-" + secrets.token_hex(24)
    other_key = "cai-" + secrets.token_hex(24)
    admin_token = "admin-" + secrets.token_hex(16)
    port, admin_port, emu_port = free_ports(3)

    config_path = tmp / "gateway.toml"
    ledger_dir = tmp / "ledger"
    config_path.write_text(
        render_config(port, admin_port, emu_port, key, other_key, ledger_dir) + render_vertex_config(emu_port)
    )
    log_path = tmp / "gateway.log"

    env = gateway_env(admin_token)
    env.update(vertex_env(tmp, emu_port))

    check = subprocess.run(
        [str(binary), "check-config", "--config", str(config_path)],
        env=env, capture_output=True, text=True, timeout=30,
    )
    if check.returncode != 0:
        pytest.fail(
            f"`cheapai-gateway check-config` rejected the test config (exit {check.returncode}):\n"
            f"{check.stdout}\n{check.stderr}\n--- config ---\n{config_path.read_text()}",
            pytrace=False,
        )

    with _running(binary, config_path, env, tmp, log_path, [port, admin_port, emu_port]) as proc:
        gw = Gateway(
            base_url=f"http://127.0.0.1:{port}/v1",
            root_url=f"http://127.0.0.1:{port}",
            admin_url=f"http://127.0.0.1:{admin_port}",
            emulator_url=f"http://127.0.0.1:{emu_port}",
            key=key,
            other_key=other_key,
            provider_key=PROVIDER_KEY,
            anthropic_provider_key=ANTHROPIC_PROVIDER_KEY,
            gemini_provider_key=GEMINI_PROVIDER_KEY,
            azure_provider_key=AZURE_PROVIDER_KEY,
            config_path=config_path,
            ledger_dir=ledger_dir,
            ledger=UsageLedger(admin_url=f"http://127.0.0.1:{admin_port}", admin_token=admin_token),
            log_path=log_path,
            process=proc,
        )
        _current = gw
        try:
            yield gw
        finally:
            _current = None


# The key the offline default config (conf/gateway.toml) accepts, as the README gives it.
DEMO_KEY = "cai-demo-local-only-0001"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class DefaultGateway:
    """The gateway run with the repository's own conf/gateway.toml (ports moved to free ones)."""

    root_url: str
    key: str
    ledger: UsageLedger  # the config's relative spool and SQLite store, in the working directory
    log_path: Path

    def records(self) -> list[dict]:
        """Every usage record in the ledger, newest first."""
        return self.ledger.records()


@pytest.fixture(scope="session")
def default_gateway(tmp_path_factory) -> DefaultGateway:
    binary = _gateway_bin()
    tmp = tmp_path_factory.mktemp("default-gateway")
    port, admin_port, emu_port = free_ports(3)
    text = (REPO_ROOT / "conf" / "gateway.toml").read_text()
    for old, new in (
        ('"0.0.0.0:8080"', f'"127.0.0.1:{port}"'),
        ('"127.0.0.1:9464"', f'"127.0.0.1:{admin_port}"'),
        ("127.0.0.1:8089", f"127.0.0.1:{emu_port}"),
    ):
        assert old in text, f"conf/gateway.toml no longer has {old}"
        text = text.replace(old, new)
    # the admin API, where the ledger is read, takes the token this variable holds
    assert 'admin_token_env = "CHEAPAI_ADMIN_TOKEN"' in text, "conf/gateway.toml no longer has its admin token"
    config_path = tmp / "gateway.toml"
    config_path.write_text(text)
    log_path = tmp / "gateway.log"
    admin_token = "admin-" + secrets.token_hex(16)
    env = dict(os.environ)
    env["CHEAPAI_ADMIN_TOKEN"] = admin_token
    env.setdefault("RUST_LOG", "info")
    with _running(binary, config_path, env, tmp, log_path, [port, admin_port, emu_port]):
        yield DefaultGateway(
            root_url=f"http://127.0.0.1:{port}",
            key=DEMO_KEY,
            ledger=UsageLedger(admin_url=f"http://127.0.0.1:{admin_port}", admin_token=admin_token),
            log_path=log_path,
        )


@contextlib.contextmanager
def _running(binary: Path, config_path: Path, env: dict, cwd: Path, log_path: Path, ports: list[int]):
    """Runs the gateway until the block ends; fails the test with the log's tail if it does
    not listen on every port in time."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary), "run", "--config", str(config_path)],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = list(ports)
        while waiting:
            if proc.poll() is not None:
                pytest.fail(
                    f"gateway exited with code {proc.returncode} before listening; log tail:\n{_read_tail(log_path)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"gateway did not accept on ports {waiting} within {START_TIMEOUT_S:.0f}s; "
                    f"log tail:\n{_read_tail(log_path)}",
                    pytrace=False,
                )
            waiting = [p for p in waiting if not _port_open(p)]
            if waiting:
                time.sleep(0.05)
        yield proc
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def client(gateway):
    from openai import OpenAI

    c = OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def other_client(gateway):
    from openai import OpenAI

    c = OpenAI(base_url=gateway.base_url, api_key=gateway.other_key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def second_tenant_client(gateway):
    """Another tenant's key, allowed every model."""
    from openai import OpenAI

    c = OpenAI(base_url=gateway.base_url, api_key=SECOND_TENANT_KEY, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def anthropic_client(gateway):
    """The Anthropic SDK as its users configure it: root URL (no /v1), key sent as x-api-key."""
    import anthropic

    c = anthropic.Anthropic(base_url=gateway.root_url, api_key=gateway.key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def anthropic_token_client(gateway):
    """The Anthropic SDK with `auth_token`: `Authorization: Bearer` (Claude Code's ANTHROPIC_AUTH_TOKEN)."""
    import anthropic

    c = anthropic.Anthropic(base_url=gateway.root_url, auth_token=gateway.key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the gateway's log to every failed test."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _current is not None:
        report.sections.append(("gateway log (tail)", _current.log_tail()))

