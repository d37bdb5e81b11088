//! No secret reaches a client or a log: the real binary runs with a password in its Redis URL
//! and in its PostgreSQL ledger URL, a provider key and an admin token; every answer it gives (status line, headers, body) and
//! every line it writes, while Redis answers and after Redis is gone, is searched for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::binary::Binary;
use common::postgres::TestPostgres;
use common::{chat, RedisServer, ADMIN_TOKEN, KEY, PROVIDER_KEY};

const REDIS_PASSWORD: &str = "redis-pw-7c1e9a4f";
const LEDGER_PASSWORD: &str = "ledger-pw-b81d3e02";

/// Everything one HTTP exchange showed the caller.
fn exchange(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut req = ureq::request(method, url).timeout(std::time::Duration::from_secs(10));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = if method == "GET" {
        req.call()
    } else {
        req.send_string(body)
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let mut seen = format!("{} {}\n", response.status(), response.status_text());
    for name in response.headers_names() {
        seen.push_str(&format!(
            "{name}: {}\n",
            response.header(&name).unwrap_or_default()
        ));
    }
    let status = response.status();
    seen.push_str(&response.into_string().unwrap_or_default());
    (status, seen)
}

fn assert_clean(what: &str, text: &str) {
    for secret in [REDIS_PASSWORD, LEDGER_PASSWORD, PROVIDER_KEY, ADMIN_TOKEN] {
        assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
    }
}

/// Every client- and operator-facing answer of a run, with Redis and the ledger up, then down.
fn requests(bin: &Binary, phase: &str) -> Vec<(String, u16, String)> {
    let bearer = format!("Bearer {KEY}");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let user = [("authorization", bearer.as_str())];
    let admin_auth = [("authorization", admin.as_str())];
    let api = |path: &str| format!("{}{path}", bin.url);
    let ops = |path: &str| format!("{}{path}", bin.admin_url);
    let mut seen = Vec::new();
    let mut record = |name: &str, (status, text): (u16, String)| {
        seen.push((name.to_string(), status, text));
    };
    record(
        "chat",
        exchange(
            "POST",
            &api("/v1/chat/completions"),
            &user,
            &chat("gpt-4o", false),
        ),
    );
    record("usage", exchange("GET", &api("/v1/usage"), &user, ""));
    record(
        "unknown key",
        exchange(
            "POST",
            &api("/v1/chat/completions"),
            // shaped like a run-time key, so the gateway asks Redis about it
            &[(
                "authorization",
                &format!("Bearer cai-{}", common::sha256_hex(phase.as_bytes())),
            )],
            &chat("gpt-4o", false),
        ),
    );
    // a provider that quotes the gateway's key back in its refusal
    let quoting = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {PROVIDER_KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    record(
        "provider refusal",
        exchange(
            "POST",
            &api("/v1/chat/completions"),
            &[
                ("authorization", bearer.as_str()),
                ("x-emulator-status", "401"),
                ("x-emulator-error-body", quoting.as_str()),
            ],
            &chat("gpt-4o", false),
        ),
    );
    record(
        "admin key",
        exchange("POST", &ops("/admin/keys"), &admin_auth, r#"{"name":"n"}"#),
    );
    record(
        "admin keys",
        exchange("GET", &ops("/admin/keys"), &admin_auth, ""),
    );
    record("ready", exchange("GET", &ops("/ready"), &[], ""));
    record("metrics", exchange("GET", &ops("/metrics"), &[], ""));
    seen
}

#[test]
fn no_secret_in_any_answer_or_log_line_with_redis_and_the_ledger_up_then_down() {
    for format in ["text", "json"] {
        let mut redis = RedisServer::with_password(REDIS_PASSWORD);
        let mut ledger = TestPostgres::start_new();
        // the test server trusts loopback: the password is only there to be kept secret
        let ledger_url = ledger
            .url()
            .replace("postgres@", &format!("postgres:{LEDGER_PASSWORD}@"));
        let spool = std::env::temp_dir().join(format!(
            "cheapai-secrets-spool-{format}-{}",
            std::process::id()
        ));
        let bin = Binary::start_with_env(
            &format!("secrets-{format}"),
            &format!(
                "[log]\nformat = \"{format}\"\n[state]\nredis_url = \"{}\"\ntimeout_ms = 50\n\
                 [usage]\nspool_dir = \"{}\"\npostgres_url_env = \"TEST_LEDGER_URL\"\n",
                redis.url(),
                spool.display()
            ),
            &[("TEST_LEDGER_URL", &ledger_url)],
        );
        let mut seen = requests(&bin, "up");
        assert_eq!(seen[0].1, 200, "{}", seen[0].2);
        assert_eq!(seen[1].1, 200, "usage with the ledger up: {}", seen[1].2);
        assert_eq!(seen[3].1, 502, "{}", seen[3].2);
        redis.kill();
        ledger.stop();
        let down = requests(&bin, "down");
        // the history cannot be read: the client learns what failed and the request id only
        let (_, status, text) = &down[1];
        assert_eq!(*status, 503, "{text}");
        assert!(
            text.contains("the usage history is unavailable; try again shortly (request id req_"),
            "{text}"
        );
        // a key not in the cache cannot be looked up
        assert_eq!(down[2].1, 503, "{}", down[2].2);
        assert!(down[2].2.contains("(request id req_"), "{}", down[2].2);
        seen.extend(down);
        let line = bin.line_with("key lookup");
        assert!(line.contains("redis://:***@127.0.0.1"), "{line}");
        // the shipper says where it could not deliver, without the password
        let line = bin.line_with("delivering");
        assert!(line.contains("postgres@127.0.0.1"), "{line}");
        // the log has caught up with the last request once its access line is there
        let last = seen.last().map(|(_, _, t)| t.clone()).unwrap_or_default();
        assert!(last.contains("cheapai_requests_total"), "{last}");
        let (_, final_answer) = exchange(
            "GET",
            &format!("{}/v1/usage", bin.url),
            &[("authorization", &format!("Bearer {KEY}"))],
            "",
        );
        let id = final_answer
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("request id")
            .to_string();
        bin.line_with(&id);
        for (name, _, text) in &seen {
            assert_clean(&format!("{format}: answer to {name}"), text);
        }
        let log = bin.lines.lock().unwrap().join("\n");
        assert!(log.lines().count() > 10, "{log}");
        assert_clean(&format!("{format}: log"), &log);
    }
}

#[test]
fn check_config_never_prints_a_credential() {
    let dir = std::env::temp_dir().join(format!("cheapai-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:1"

[state]
redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"

[providers.a]
kind = "openai"
base_url = "https://user:{REDIS_PASSWORD}@api.example.com/v1"

[providers.b]
kind = "openai"
base_url = "https://api.example.com/v1?api_key={REDIS_PASSWORD}"
"#
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("providers.a.base_url"), "{text}");
    assert!(text.contains("providers.b.base_url"), "{text}");
    assert_clean("check-config output", &text);
}
