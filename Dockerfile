# Agent Hub image: a multi-stage build of hub-server (and hubctl for operators).
#   docker build -t mcp-agent-hub .
#   docker run -d --name mcp-hub -p 127.0.0.1:3000:3000 -v "$HOME/.mcp-hub:/data" mcp-agent-hub
# `hubctl --docker start` does the same with the resolved profile.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch them.
COPY Cargo.toml Cargo.lock ./
COPY hub-server/Cargo.toml hub-server/Cargo.toml
COPY hubctl/Cargo.toml hubctl/Cargo.toml
COPY hub-launch/Cargo.toml hub-launch/Cargo.toml
# The manifest names its bench targets: without their files cargo refuses to load it.
COPY hub-server/benches hub-server/benches
RUN mkdir -p hub-server/src hubctl/src hub-launch/src \
 && echo 'fn main() {}' > hub-server/src/main.rs && touch hub-server/src/lib.rs \
 && echo 'fn main() {}' > hubctl/src/main.rs && echo 'fn main() {}' > hub-launch/src/main.rs \
 && cargo fetch --locked
COPY . .
RUN touch hub-server/src/lib.rs hub-server/src/main.rs hubctl/src/main.rs \
 && cargo build --release --locked -p hub-server -p hubctl

FROM debian:bookworm-slim
# /artifacts: the mount point of the artifacts volume replicas share (deploy/compose.yaml);
# a new named volume takes this directory's owner, so the hub user can write to it.
RUN useradd --system --uid 10001 --home-dir /data hub \
 && mkdir -p /data /artifacts && chown hub /data /artifacts
COPY --from=build /src/target/release/hub-server /usr/local/bin/hub-server
COPY --from=build /src/target/release/hubctl /usr/local/bin/hubctl
USER hub
# Inside the container the hub listens on all interfaces; publish the port on loopback
# only (-p 127.0.0.1:3000:3000) unless remote agents must reach it.
ENV MCP_HUB_HOST=0.0.0.0 \
    MCP_HUB_PORT=3000 \
    MCP_HUB_DATA=/data
VOLUME ["/data"]
EXPOSE 3000
STOPSIGNAL SIGTERM
CMD ["hub-server"]
