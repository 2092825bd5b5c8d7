# The otedama image: `otedama-cli serve` with its configuration at /app/config/config.yaml and
# its data (SQLite database, API secret, TLS certificate) in the volume /app/data.
#
#   docker build -t otedama .
#   docker run -v ./config.yaml:/app/config/config.yaml:ro -v otedama_data:/app/data \
#       -p 3333:3333 -p 8080:8080 otedama
#
# BUILDER and RUNTIME name the base images; a machine with no registry makes its own (see
# docs/DEPLOYMENT.md). `--target prebuilt --build-arg BINARY=target/release/otedama-cli` packs
# a binary built outside instead of building one here.
ARG BUILDER=rust:1-bookworm
ARG RUNTIME=debian:bookworm-slim

FROM ${RUNTIME} AS base
RUN groupadd --system otedama \
    && useradd --system --gid otedama --home-dir /app --shell /usr/sbin/nologin otedama \
    && mkdir -p /app/config /app/data \
    && chown otedama:otedama /app/data
# Relative paths in the configuration (the database, the API secret) land in the volume.
WORKDIR /app/data
VOLUME /app/data
EXPOSE 3333 8080
# The health server of docs/config.yaml; point it elsewhere with -e OTEDAMA_URL=...
ENV OTEDAMA_URL=http://127.0.0.1:8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["otedama-cli", "status", "--ready"]
USER otedama
ENTRYPOINT ["otedama-cli"]
CMD ["serve", "--config", "/app/config/config.yaml"]

FROM base AS prebuilt
ARG BINARY=target/release/otedama-cli
COPY --chown=root:root ${BINARY} /usr/local/bin/otedama-cli

# Built here (after the prebuilt stage, so that `--target prebuilt` never needs BUILDER).
FROM ${BUILDER} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p otedama-cli \
    && cp target/release/otedama-cli /otedama-cli

FROM base AS runtime
COPY --from=build --chown=root:root /otedama-cli /usr/local/bin/otedama-cli
