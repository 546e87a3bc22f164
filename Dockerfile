# syntax=docker/dockerfile:1
# rampart's container image: built in Rust's Debian image, shipped on distroless (glibc and
# CA roots, no shell, no package manager) as a non-root user. The binary is the same as a
# release build's, stripped.
#
#   docker build -t rampart .
#   docker run -p 80:80 -p 443:443 -v ./rampart.toml:/etc/rampart/rampart.toml:ro \
#     -v rampart-state:/var/lib/rampart rampart
#
# Ports below 1024 need no capability: Docker sets net.ipv4.ip_unprivileged_port_start=0
# in containers. The health check asks the admin API's /ready (`rampart ready`), so the
# config needs an [admin] section (the default listen address, loopback, is enough).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rampart --bin rampart \
 && strip target/release/rampart \
 && mkdir -p /out/state /out/config

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rampart /usr/bin/rampart
COPY --from=build --chown=65532:65532 /out/state /var/lib/rampart
COPY --from=build /out/config /etc/rampart
ENV RAMPART_STATE_DIR=/var/lib/rampart
VOLUME ["/var/lib/rampart"]
WORKDIR /var/lib/rampart
USER nonroot:nonroot
EXPOSE 80 443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/bin/rampart", "ready", "-c", "/etc/rampart/rampart.toml"]
ENTRYPOINT ["/usr/bin/rampart"]
CMD ["serve", "-c", "/etc/rampart/rampart.toml"]
