//! SIGTERM on the real binary: the listener closes at once, in-flight streams finish.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_lets_in_flight_streams_finish_and_refuses_new_connections() {
    let (mut child, gw) = start("shutdown", 4);
    let stream = slow_stream(gw, 10);
    std::thread::sleep(Duration::from_millis(500));
    let term_at = Instant::now();
    signal(child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gw)).is_err(),
        "listener must close on SIGTERM"
    );

    let body = stream.join().expect("stream thread");
    let events: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(events.last().copied(), Some("data: [DONE]"), "{events:?}");
    assert_eq!(
        events.len(),
        13,
        "role + 10 chunks + finish + [DONE]: {events:?}"
    );

    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(15),
            "gateway did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
}

/// A keep-alive connection idle between requests is closed as soon as the listener stops,
/// not held open until the process exits (here, while a stream keeps the process running).
#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use std::io::Read;
    let (mut child, gw) = start("idle-keepalive", 10);
    let stream = slow_stream(gw, 15);
    // one answered request, then the connection waits for the next
    let mut idle = raw_connect(gw, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).ends_with('}') {
        let n = idle.read(&mut buf).expect("the answer");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    std::thread::sleep(Duration::from_millis(300));
    let at = terminate(&child);
    idle.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let closed = match idle.read(&mut buf) {
        Ok(n) => n == 0,
        // the read timed out: still open
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "the idle connection stayed open after SIGTERM");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the process had already exited: this proves nothing about the idle connection"
    );
    assert!(
        at.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        at.elapsed()
    );

    let body = stream.join().expect("stream thread");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(child.wait().expect("exits").success());
}

/// Every request the gateway answered before and during a SIGTERM has its usage record in
/// the ledger once the process has exited.
#[test]
fn sigterm_under_load_loses_no_usage_record() {
    let (mut child, gw) = start("term", 5);
    let url = format!("http://127.0.0.1:{gw}/v1/chat/completions");
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
                let mut answered = 0;
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    let stream = i % 2 == 0;
                    let result = agent
                        .post(&url)
                        .set("authorization", &format!("Bearer {KEY}"))
                        .set("x-emulator-chunks", "8")
                        .set("x-emulator-chunk-delay-ms", "40")
                        .send_string(&chat("gpt-4o", stream));
                    match result {
                        Ok(r) => {
                            let _ = r.into_string();
                            answered += 1;
                        }
                        Err(ureq::Error::Status(..)) => answered += 1,
                        Err(_) => break, // the listener is closed: shutting down
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    signal(child.id(), "TERM");
    let answered: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let status = child.wait().expect("gateway exits");
    assert!(status.success(), "{status:?}");
    // the records are in the ledger once the process has exited
    let records = ledger_records(gw).len();
    assert!(answered >= 8, "load ran: {answered}");
    assert_eq!(records, answered, "one record per answered request");
}

/// Starts the binary with its in-process emulator and `grace_period_seconds = grace`; returns
/// it with its gateway port (its ledger is [`ledger_records`]'s).
fn start(name: &str, grace: u64) -> (std::process::Child, u16) {
    let [gw, admin, emu] = free_ports();
    let dir = std::env::temp_dir().join(format!("cheapai-{name}-{gw}"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let extra = format!("[emulator]\nlisten = \"127.0.0.1:{emu}\"\n");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        config_text(gw, admin, emu, &extra).replace(
            "grace_period_seconds = 1",
            &format!("grace_period_seconds = {grace}"),
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
        .args(["run", "--config"])
        .arg(&config)
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway starts");
    wait_for_port(gw);
    wait_for_port(emu);
    (child, gw)
}

/// A chat stream of `chunks` chunks 200 ms apart through the gateway at `gw`, read whole on a
/// thread of its own.
fn slow_stream(gw: u16, chunks: u32) -> std::thread::JoinHandle<String> {
    let url = format!("http://127.0.0.1:{gw}/v1/chat/completions");
    std::thread::spawn(move || {
        ureq::post(&url)
            .set("authorization", &format!("Bearer {KEY}"))
            .set("x-emulator-chunks", &chunks.to_string())
            .set("x-emulator-chunk-delay-ms", "200")
            .send_string(&chat("gpt-4o", true))
            .expect("stream starts")
            .into_string()
            .expect("whole stream")
    })
}

fn terminate(child: &std::process::Child) -> Instant {
    let at = Instant::now();
    signal(child.id(), "TERM");
    at
}

/// The grace period bounds a stop; it is not a wait: an idle instance exits at once, a busy
/// one as soon as its last request ended and its records were written.
#[test]
fn sigterm_exits_as_soon_as_the_last_request_and_its_record_are_done() {
    // 30 s, as in the production example's 300: a bound, not a wait
    let (mut idle, gw) = start("idle-term", 30);
    let answer = ureq::post(&format!("http://127.0.0.1:{gw}/v1/chat/completions"))
        .set("authorization", &format!("Bearer {KEY}"))
        .send_string(&chat("gpt-4o", false))
        .expect("answer");
    assert_eq!(answer.status(), 200);
    let at = terminate(&idle);
    let status = idle.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        at.elapsed() < Duration::from_secs(3),
        "an idle instance took {:?} of its 30 s grace period",
        at.elapsed()
    );

    let (mut busy, gw) = start("busy-term", 30);
    let stream = slow_stream(gw, 10);
    std::thread::sleep(Duration::from_millis(300));
    let at = terminate(&busy);
    let body = stream.join().expect("stream thread");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let status = busy.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    let took = at.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "exit {took:?} after SIGTERM, the stream ran ~1.7 s past it"
    );
    let records = ledger_records(gw);
    assert_eq!(records.len(), 1, "{records:?}");
}
