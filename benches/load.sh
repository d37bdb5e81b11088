#!/usr/bin/env bash
# Load bench: the provider emulator directly vs. the same traffic through the gateway, in one
# run, interleaved, so the ratio is meaningful on a noisy shared machine.
#
#   benches/load.sh            # 10 s per measurement, 64 connections, 2 rounds
#   DURATION=20 ROUNDS=3 benches/load.sh
#
# Prints RPS, p50 and p99 for each (target, workload) and the gateway/direct ratio, plus the
# gateway's peak RSS. Targets: the emulator directly; the gateway on in-memory state; the
# gateway with its usage history in a real redis-server and no limits ("redis"); the same
# with limits on ("limited": a key with RPM and TPM limits counted in that redis-server by
# the window script, concurrent requests sharing a call; settlements batched). limits-on/limits-off compares the last two,
# which differ only in the limits; limited/gateway (no Redis at all) is printed as well.
# "balanced": the in-memory gateway with the model on two deployments (weights 1 and 3, both
# at the emulator), so balanced/gateway is the cost of the balancer, breakers and attempt loop.
# Workloads: chat JSON, and a 20-chunk SSE stream with no delay between chunks.
# Load generator: wrk (Debian package, installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="$CARGO_TARGET_DIR/release/cheapai-gateway"
KEY="cai-bench-key-0001"

scripts/setup
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
cargo build --release --bin cheapai-gateway

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EMU=$(port); GW=$(port); ADMIN=$(port); RGW=$(port); RADMIN=$(port); LGW=$(port); LADMIN=$(port)
REDIS=$(port); BGW=$(port); BADMIN=$(port)

cat >"$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$ADMIN"
threads = 2
grace_period_seconds = 1
[providers.emu]
kind = "openai_compatible"
base_url = "http://127.0.0.1:$EMU/v1"
[models."gpt-4o"]
provider = "emu"
[[keys]]
name = "bench"
sha256 = "$("$BIN" hash-key "$KEY")"
TOML

# the same gateway with its state in Redis: without limits, and with limits on
on_ports() { sed -e "s/127.0.0.1:$GW\"/127.0.0.1:$1\"/" -e "s/127.0.0.1:$ADMIN\"/127.0.0.1:$2\"/" "$work/gateway.toml"; }
state="$(printf '[state]\nredis_url = "redis://127.0.0.1:%s/0"\n' "$REDIS")"
{ on_ports "$RGW" "$RADMIN"; echo "$state"; } >"$work/redis.toml"
{ on_ports "$LGW" "$LADMIN"; echo 'limits = { rpm = 100000000, tpm = 100000000000 }'; echo "$state"; } >"$work/limited.toml"
on_ports "$BGW" "$BADMIN" | sed -e 's/^provider = "emu"$/deployments = [{ provider = "emu", weight = 1 }, { provider = "emu-b", weight = 3 }]/' >"$work/balanced.toml"
printf '[providers.emu-b]\nkind = "openai_compatible"\nbase_url = "http://127.0.0.1:%s/v1"\n' "$EMU" >>"$work/balanced.toml"

redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$BIN" emulator --listen "127.0.0.1:$EMU" --threads 2 >"$work/emu.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$BIN" run --config "$work/gateway.toml" >"$work/gw.log" 2>&1 & pids+=($!)
GW_PID=$!
RUST_LOG=warn "$BIN" run --config "$work/redis.toml" >"$work/rgw.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$BIN" run --config "$work/limited.toml" >"$work/lgw.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$BIN" run --config "$work/balanced.toml" >"$work/bgw.log" 2>&1 & pids+=($!)
for p in $EMU $GW $RGW $LGW $BGW $REDIS; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done

chat='{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}'
stream='{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
lua() { # $1 body, $2 extra header line
    cat <<LUA
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $KEY"
$2
LUA
}
lua "$chat" "" >"$work/chat.lua"
lua "$stream" 'wrk.headers["x-emulator-chunks"] = "20"' >"$work/stream.lua"

# wrk --latency output → "rps p50_ms p99_ms non2xx"
measure() { # $1 url, $2 lua
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$2" "$1" 2>&1 | python3 -c '
import re, sys
t = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
errs = re.search(r"Socket errors:.*", t)
print("%.0f %.2f %.2f %s %s" % (float(rps.group(1)) if rps else 0, ms("50"), ms("99"),
      bad.group(1) if bad else 0, "errors" if errs else "ok"))
'
}

declare -A sum_rps
printf '%-8s %-7s %-6s %10s %8s %8s %6s\n' round target load rps p50_ms p99_ms non2xx
for round in $(seq "$ROUNDS"); do
    for load in chat stream; do
        for target in direct gateway redis limited balanced; do
            case $target in
                direct) url="http://127.0.0.1:$EMU/v1/chat/completions" ;;
                gateway) url="http://127.0.0.1:$GW/v1/chat/completions" ;;
                redis) url="http://127.0.0.1:$RGW/v1/chat/completions" ;;
                limited) url="http://127.0.0.1:$LGW/v1/chat/completions" ;;
                balanced) url="http://127.0.0.1:$BGW/v1/chat/completions" ;;
            esac
            read -r rps p50 p99 bad _ < <(measure "$url" "$work/$load.lua")
            printf '%-8s %-7s %-6s %10s %8s %8s %6s\n' "$round" $target $load "$rps" "$p50" "$p99" "$bad"
            sum_rps[$target.$load]=$(( ${sum_rps[$target.$load]:-0} + rps ))
        done
    done
done
echo
for load in chat stream; do
    python3 -c "
d, g, r, l, b = ${sum_rps[direct.$load]}, ${sum_rps[gateway.$load]}, ${sum_rps[redis.$load]}, ${sum_rps[limited.$load]}, ${sum_rps[balanced.$load]}
print('ratio %-6s gateway/direct = %.2fx   limits-on/limits-off = %.2fx   limited/no-redis = %.2fx   balanced/gateway = %.2fx'
      % ('$load', g / max(1, d), l / max(1, r), l / max(1, g), b / max(1, g)))"
done
echo "gateway peak RSS: $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$GW_PID/status)"
