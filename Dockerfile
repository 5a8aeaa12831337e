# syntax=docker/dockerfile:1
#
# slo-gateway: one image for both roles (`agent`, `receiver`; also `certs`, `check-config`).
#   docker build -t slo-gateway:0.1.0 .
#   docker run --rm slo-gateway:0.1.0 --help
# No protoc, OpenSSL or system CA store is needed: the protobuf code is checked in, TLS is rustls/ring,
# and both roles trust only the CA files named in their config.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slo-gateway \
    && cp target/release/slo-gateway /slo-gateway \
    && /slo-gateway --version

# glibc + libgcc, no shell, no package manager; runs as uid/gid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /slo-gateway /slo-gateway
USER 65532:65532
# 8443 receiver mTLS, 9465 receiver admin, 9464 agent /metrics /healthz /readyz.
EXPOSE 8443 9464 9465
ENTRYPOINT ["/slo-gateway"]
CMD ["--help"]
