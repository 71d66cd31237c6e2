# The image of any one service: build argument SERVICE (auth-service, catalog-service,
# purchase-service, stock-writer) and PORT (8081-8084). docker-compose.yaml builds the
# four from this one file. Build context: the repository root.
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=auth-service --build-arg PORT=8081 .
# The default (last) stage compiles the service in a Rust image. The `prebuilt` target
# packages a binary built elsewhere instead: build context a directory holding it as
# `service`, runtime base RUNTIME_BASE (scripts/compose-test packages the binaries that
# `cargo build` made on this machine, on a local Debian bookworm base).
#   docker build -f deploy/docker/service.Dockerfile --target prebuilt --build-arg PORT=8081 DIR
ARG RUNTIME_BASE=debian:bookworm-slim

FROM rust:1-bookworm AS builder
ARG SERVICE
WORKDIR /app
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/app/target \
    test -n "$SERVICE" \
    && cargo build --release --locked -p "$SERVICE" \
    && cp "target/release/$SERVICE" /usr/local/bin/service

FROM ${RUNTIME_BASE} AS runtime
ARG PORT
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home app
USER 10001
WORKDIR /app
ENV APP_HOST=0.0.0.0 APP_PORT=${PORT} LOG_FORMAT=json
EXPOSE ${PORT}
HEALTHCHECK --interval=5s --timeout=3s --retries=20 CMD curl -fsS "http://127.0.0.1:${APP_PORT}/healthz" || exit 1
ENTRYPOINT ["/usr/local/bin/service"]

FROM runtime AS prebuilt
COPY service /usr/local/bin/service

FROM runtime
COPY --from=builder /usr/local/bin/service /usr/local/bin/service
