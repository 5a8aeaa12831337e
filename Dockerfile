# syntax=docker/dockerfile:1
#
# slo-gateway images, built from the workspace:
#   docker build -t slo-gateway:0.1.0 .                        # full CLI + the lean agent (runtime cluster, shoot-rules)
#   docker build --target agent -t slo-gateway-agent:0.1.0 .   # the seed agent alone
#   docker run --rm slo-gateway:0.1.0 --help
# No protoc, OpenSSL or system CA store is needed: the protobuf code is checked in, TLS is rustls/ring,
# and both roles trust only the CA files named in their config. Release binaries are stripped
# (profile.release in Cargo.toml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slo-gateway \
    && cargo build --profile agent --locked -p slo-gateway-agent \
    && cp target/release/slo-gateway target/agent/slo-gateway-agent / \
    && /slo-gateway --version && /slo-gateway-agent --version

# The seed agent: `slo-gateway-agent agent --config …` (also `check-config`). It links no rule
# generator, certificate generation, twin or demo.
FROM gcr.io/distroless/cc-debian12:nonroot AS agent
COPY --from=build /slo-gateway-agent /slo-gateway-agent
USER 65532:65532
# 9464 agent /metrics /healthz /readyz /status.
EXPOSE 9464
ENTRYPOINT ["/slo-gateway-agent"]
CMD ["--help"]

# glibc + libgcc, no shell, no package manager; runs as uid/gid 65532 (nonroot). Both binaries:
# the seed chart runs /slo-gateway-agent for the agent and /slo-gateway for shoot-rules.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /slo-gateway /slo-gateway
COPY --from=build /slo-gateway-agent /slo-gateway-agent
USER 65532:65532
# 8443 receiver mTLS, 9465 receiver admin, 9464 agent /metrics /healthz /readyz.
EXPOSE 8443 9464 9465
ENTRYPOINT ["/slo-gateway"]
CMD ["--help"]
