# cheapai-gateway container image.
#
#   docker build -t cheapai-gateway .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9464:9464 -v cheapai-data:/var/lib/cheapai \
#     -e CHEAPAI_LEDGER_URL=postgres://USER:PASSWORD@HOST:5432/DB cheapai-gateway
#
# Two stages: the builder compiles the release binary on Debian bookworm (Pingora needs cmake
# for zlib-ng and a C compiler for zstd, ring and mimalloc; the rust image has the compiler),
# the runtime image is bookworm-slim with only CA certificates (rustls reads the system's
# roots to reach real providers) and the binary, run as an unprivileged user.
# The image ships deploy/gateway.toml: the offline default catalog served by the bundled
# emulator, state in Redis at redis://redis:6379 and the usage ledger in the PostgreSQL that
# CHEAPAI_LEDGER_URL names (deploy/compose.yaml runs both). Without a reachable PostgreSQL the
# gateway still serves and keeps the usage records in its spool until the ledger is back.
# Mount your own config over /etc/cheapai/gateway.toml for real providers, or for a single
# instance's SQLite ledger (store = "sqlite:usage.db", in the volume).

FROM docker.io/library/rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps target/, .git and the fuzzer's corpora and artifacts out of the context.
COPY . .
# `dist` is the deployed binary's profile (Cargo.toml: release with fat LTO and one codegen
# unit); `--build-arg PROFILE=release` builds faster. The registry and target caches survive
# between builds (BuildKit, podman and buildah); the binary is copied out of the cached
# target dir in the same step.
ARG PROFILE=dist
# The image's demo config (deploy/gateway.toml) runs the provider emulator in process, so the
# default build includes it; `--build-arg FEATURES=` builds the product alone, for a config
# whose providers are real.
ARG FEATURES=emulator
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile "$PROFILE" --features "$FEATURES" --bin cheapai-gateway \
    && install -D -m 0755 "target/$PROFILE/cheapai-gateway" /out/cheapai-gateway

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cheapai \
    && useradd --system --uid 10001 --gid cheapai --home-dir /var/lib/cheapai --create-home \
       --shell /usr/sbin/nologin cheapai
COPY --from=builder /out/cheapai-gateway /usr/local/bin/cheapai-gateway
COPY deploy/gateway.toml /etc/cheapai/gateway.toml
# The working directory holds the usage spool (usage-spool/, relative in the config): every
# usage record is written there before it is shipped to the ledger, so records not yet
# shipped exist only there. It must be a volume that outlives the container (compose mounts
# one), one per running gateway: a spool is locked by the process that writes it.
WORKDIR /var/lib/cheapai
VOLUME ["/var/lib/cheapai"]
USER cheapai
# 8080: the client API; 9464: the admin listener (/health, /ready, /metrics, /admin).
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/cheapai-gateway"]
CMD ["run", "--config", "/etc/cheapai/gateway.toml"]
