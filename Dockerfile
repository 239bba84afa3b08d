# herald in a container: `herald run` as PID 1, as a non-root user, with the
# content, the feeds and herald's state (SQLite database, signing secret)
# on volumes; or point it at PostgreSQL (README, "Storage").
#
#   docker build -t herald .          (or: podman build --format docker -t herald .)
#   docker run -d --name herald -p 8080:8080 \
#     -v "$PWD/content:/srv/herald/content:ro" \
#     -v herald-feeds:/srv/herald/feeds -v herald-data:/srv/herald/data herald
#
# Configuration: the sample config/herald.toml is baked in at
# /srv/herald/config/herald.toml; mount your own over it (or point
# HERALD_CONFIG elsewhere) and override single keys with HERALD_SECTION__KEY
# variables. Secrets only ever come from the environment:
# HERALD_MAIL__SMTP__PASSWORD and HERALD_SUBSCRIBERS__SECRET.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# No debug line tables in the image's binary (Cargo.toml keeps them for
# profiling on a workstation): about 25 MB instead of about 100 MB, and a
# faster build. Panics still name the functions.
ENV CARGO_PROFILE_RELEASE_DEBUG=false

# Dependencies in their own layer, rebuilt only when Cargo.toml or Cargo.lock
# change: the manifest with a stub for every target it declares (Cargo
# checks that each one exists: benches/NAME.rs, tests/NAME.rs, any `path`),
# then a release build of the dependencies alone. The stubs of benches and
# tests stay for the real build below, which builds neither.
COPY Cargo.toml Cargo.lock ./
RUN stubs=$(awk '/^\[/ { section = $1 } \
      section == "[[bench]]" && $1 == "name" { print "benches/" $3 ".rs" } \
      section == "[[test]]" && $1 == "name" { print "tests/" $3 ".rs" } \
      $1 == "path" { print $3 }' Cargo.toml | tr -d '"') \
 && for f in src/main.rs $stubs; do mkdir -p "$(dirname "$f")" && echo 'fn main() {}' > "$f"; done \
 && : > src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/herald-* target/release/deps/herald-* target/release/deps/libherald-*

# herald itself. Templates and migrations are compiled into the binary.
COPY build.rs ./
COPY migrations migrations
COPY templates templates
COPY src src
RUN cargo build --release --locked --bin herald \
 && install -D -m 0755 target/release/herald /out/herald

# ---- run --------------------------------------------------------------------
FROM debian:bookworm-slim

# Debian's CA certificates, and nothing else: herald's TLS clients (SMTP,
# WebSub) trust this store, plus mail.smtp.ca_file / websub.ca_file. Add a
# company CA here (update-ca-certificates) or mount a PEM file for those.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so that host directories mounted as volumes can be given
# to it (`chown 10001:10001`).
RUN groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --home-dir /srv/herald \
      --no-create-home --shell /usr/sbin/nologin herald

# The repository's layout, so the sample config's relative paths hold:
# config/, templates/ (overrides of the built-in templates), content/,
# feeds/ and data/. Only the three volumes are writable by herald.
WORKDIR /srv/herald
COPY --from=build /out/herald /usr/local/bin/herald
COPY config config
COPY templates templates
RUN mkdir content feeds data \
 && chown herald:herald content feeds data

# Listen on every interface (the sample config says 127.0.0.1), and keep
# the mail outbox, when used, with the rest of herald's state.
ENV HERALD_CONFIG=/srv/herald/config/herald.toml \
    HERALD_SERVER__LISTEN=0.0.0.0:8080 \
    HERALD_MAIL__OUTBOX_DIR=/srv/herald/data/outbox

VOLUME ["/srv/herald/content", "/srv/herald/feeds", "/srv/herald/data"]
EXPOSE 8080

# Numeric, so orchestrators can verify "not root" without reading
# /etc/passwd (Kubernetes' runAsNonRoot); it is the herald user above.
USER 10001:10001

# `herald healthcheck --ready` GETs /readyz at server.listen: healthy while
# the feeds of a successful build are served (not when the content
# directory is missing), no curl needed. Kubernetes: /healthz for liveness,
# /readyz for readiness.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["herald", "healthcheck", "--ready"]

# Exec form: herald is PID 1 and gets SIGTERM itself; it stops accepting
# connections and is gone within server.shutdown_grace (8 s: requests,
# the rebuild and the digest batch in hand finished or recorded as
# uncertain), exit code 0, before Docker's SIGKILL at 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["herald"]
CMD ["run"]
