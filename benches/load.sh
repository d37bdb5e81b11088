#!/usr/bin/env bash
# Load bench: the provider emulator directly, nginx as the reference proxy hop, a bare Pingora
# hop (benches/bare_pingora.rs, the floor of any Pingora proxy), and the gateway (in-memory
# state, SQLite usage ledger; its usage ledger in a PostgreSQL server the bench starts; state
# in Redis without and with limits; a model on two deployments), and, with the provider behind
# a TLS front (benches/bench_tls.py), nginx and the gateway over HTTP/1.1 and HTTP/2 to it and
# with TLS on the client side too, in one run, interleaved, so that the ratios mean something on
# a noisy shared machine.
#
#   benches/load.sh                          # 8 s per measurement, 64 connections, 2 rounds
#   DURATION=20 ROUNDS=3 benches/load.sh
#   TARGETS="direct nginx gateway" LOADS=chat PHASES=load benches/load.sh
#   TARGETS="direct-tls nginx-tls gateway-tls gateway-h2 nginx-edge gateway-edge" benches/load.sh
#   GATEWAY_BIN=target/dist/cheapai-gateway COMPARE="old=/path/to/old/binary" benches/load.sh
#   TARGETS="direct nginx gateway ledger" COMPARE="pre=/path/to/pre-ledger/binary" PHASES=load benches/load.sh
#
# Prints RPS, p50/p99 and CPU ms per request for every (target, workload) — chat JSON, a
# 20-chunk stream with no delay, 1,536-dimension embeddings — and the ratios to nginx and to
# direct; concurrency-1 latency added by each hop; the gateway's syscalls per request (strace);
# its peak RSS; and peak RSS and added time with 2,000 slow concurrent streams; for the usage
# ledger, the RPS with PostgreSQL against without it, the shipper's ingest and lag, and every
# request found in the store. The driver is benches/load.py; docs/benchmarks.md keeps the
# figures.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# GATEWAY_BIN: measure another build as "gateway" (e.g. target/dist/cheapai-gateway, the
# deployed profile); the default is the release build the tests use.
BIN="${GATEWAY_BIN:-$CARGO_TARGET_DIR/release/cheapai-gateway}"

# installs wrk, nginx-light and strace too (without starting nginx: the bench runs its own)
scripts/setup
# the same selection as scripts/test, so after the tests this builds nothing
cargo build --release --workspace --features cheapai-gateway/emulator --bins --examples

# 2,000 concurrent streams need 4,000+ descriptors in the proxy and in wrk
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 benches/load.py "$BIN" "$CARGO_TARGET_DIR/release/examples/bare_pingora" \
    "$CARGO_TARGET_DIR/release/cheapai-emulator"
