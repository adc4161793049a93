# syntax=docker/dockerfile:1
#
# trailwarden container image: a release build on Debian bookworm, run on distroless
# (glibc, CA certificates, nothing else: no shell, no package manager) as a non-root user.
#
#   docker build --build-arg TRAILWARDEN_COMMIT=$(git rev-parse --short=12 HEAD) \
#     -t trailwarden:0.1.0 .
#   docker run --rm -p 127.0.0.1:9847:9847 -v "$PWD/my-config:/etc/trailwarden:ro" \
#     -e AWS_REGION=us-east-1 trailwarden:0.1.0 run --config /etc/trailwarden/trailwarden.yaml
#
# The Kubernetes base (deploy/kubernetes/) mounts its own configuration over
# /etc/trailwarden and a volume at /var/lib/trailwarden, and runs as the same user.

ARG RUST_VERSION=1.94.1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo.toml lists crates/core/, testbed/, trailsim/ and xtask/ as
# members, so cargo needs them to load it, even though only the trailwarden binary is built.
COPY . .
# .git stays out of the context: `trailwarden --version` names the commit given here.
ARG TRAILWARDEN_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    TRAILWARDEN_COMMIT="$TRAILWARDEN_COMMIT" cargo build --release --locked --bin trailwarden \
    && install -D -m 0755 target/release/trailwarden /out/usr/local/bin/trailwarden \
    && install -d -m 0700 /out/var/lib/trailwarden \
    && install -D -m 0644 -t /out/etc/trailwarden \
       config/trailwarden.yaml config/policies.yaml config/detections.yaml

# cc: glibc and libgcc_s, which the binary links (AWS-LC and SQLite are built in), and the
# CA bundle rustls reads. The :nonroot variant's user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/usr/local/bin/trailwarden /usr/local/bin/trailwarden
COPY --from=build /out/etc/trailwarden/ /etc/trailwarden/
COPY --from=build --chown=65532:65532 /out/var/lib/trailwarden /var/lib/trailwarden
USER 65532:65532
# The shipped config listens on 127.0.0.1 (secure by default): inside a container, set
# `listen: 0.0.0.0:9847` in your own configuration to publish it.
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/trailwarden"]
CMD ["run", "--config", "/etc/trailwarden/trailwarden.yaml"]
