#!/usr/bin/env bash
# Container test: builds the real Dockerfile with podman and runs the image
# the way ops would, with a mounted content directory and a real SMTP server
# on the host. Checks /readyz, a feed (parsed by Python's feedparser), a
# confirmation mail through the container's SMTP transport, `podman
# healthcheck run`, that the daemon is PID 1 and not root, that `podman
# stop` ends it with exit code 0, and that the database copied off the
# stopped container is sound (the backup recipe of the README).
#
#   sudo bash scripts/container-test.sh        (as root: podman, apt-get)
#
# There is no Docker engine and no image registry here, so the two base
# images of the Dockerfile are made locally and cached in podman's store:
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm, slimmed
#   rust:1-bookworm       that + gcc, libc6-dev, pkg-config, make and
#                         ca-certificates from Debian + this machine's own
#                         Rust toolchain (the one `rustc` runs)
# Both are rebuilt only when missing (the Rust one also when the host's
# rustc or CA bundle changed). herald's image is built with podman's layer
# cache, whose dependency layer is reused until Cargo.toml or Cargo.lock
# change (HERALD_CT_NO_CACHE=1: without it); the layers of earlier builds
# are removed (`podman image prune`, untagged images only).
#
# Needs: root, Debian's apt (podman, buildah, runc, debootstrap are
# installed when missing), deb.debian.org and crates.io, python3 with
# aiosmtpd and feedparser (.ci/run installs them), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=localhost/herald:test
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:1-bookworm
MIRROR=http://deb.debian.org/debian
NAME=herald-ct-$$

T0=$(date +%s.%N)
STEP_T0=$T0
elapsed() { # seconds since $1, one decimal
  awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
step() {
  if [ "$STEP_T0" != "$T0" ]; then
    printf '   (step took %s s)\n' "$(elapsed "$STEP_T0")"
  fi
  STEP_T0=$(date +%s.%N)
  printf '\n== [%6s s] %s\n' "$(elapsed "$T0")" "$*"
}
die() {
  printf '\ncontainer-test: FAILED: %s\n' "$*" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/herald-ct.XXXXXX)
SMTP_PID=
cleanup() {
  local rc=$?
  set +e
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$rc" -ne 0 ]; then
      echo "-- last lines of the container's log:" >&2
      podman logs --tail 40 "$NAME" >&2
    fi
    podman rm --force --time 5 "$NAME" >/dev/null
  fi
  podman volume rm --force "$NAME-feeds" "$NAME-data" >/dev/null 2>&1
  if [ -n "$SMTP_PID" ]; then
    kill "$SMTP_PID" 2>/dev/null
    wait "$SMTP_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
step "tools: podman, buildah, runc, debootstrap"
[ "$(id -u)" -eq 0 ] || die "run as root: podman's rootful store and apt-get need it (uid is $(id -u))"
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  echo "installing ${missing[*]} from Debian"
  apt-get update -qq || die "apt-get update failed: Debian's package mirror is unreachable"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
python3 -c 'import aiosmtpd' 2>/dev/null \
  || die "python3 cannot import aiosmtpd (the SMTP server of tests/smtp_server.py): pip install aiosmtpd"
python3 -c 'import feedparser' 2>/dev/null \
  || die "python3 cannot import feedparser (checks the served feed): pip install feedparser"
podman --version
buildah --version
runc --version | head -n 1

# ---------------------------------------------------------------------------
step "podman engine settings (/etc/containers/containers.conf)"
# Known quirks of this machine: podman needs runc as its OCI runtime and
# explicit default ulimits for containers.
CONF=/etc/containers/containers.conf
if grep -qs '^runtime = "runc"' "$CONF" && grep -qs '^default_ulimits = .*nofile=20000:20000' "$CONF"; then
  echo "already set in $CONF"
else
  if [ -e "$CONF" ]; then
    cp "$CONF" "$CONF.before-herald-ct"
    echo "replacing $CONF (the old one is kept as $CONF.before-herald-ct)"
  fi
  mkdir -p /etc/containers
  cat >"$CONF" <<'EOF'
# Written by herald's scripts/container-test.sh for this machine's quirks.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
fi
cat "$CONF"

# ---------------------------------------------------------------------------
step "base image $DEBIAN_IMAGE (debootstrap --variant=minbase bookworm)"
if podman image exists "$DEBIAN_IMAGE"; then
  echo "cached: $(podman image inspect --format '{{.Id}} created {{.Created}}' "$DEBIAN_IMAGE")"
else
  rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap bookworm from $MIRROR failed (log above)"; }
  # What the official slim image does: no docs, man pages or locales, now
  # or in packages installed later, and no apt caches.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
Acquire::Languages "none";
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # Security and point-release updates, as the official image's sources.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  tar --numeric-owner -C "$rootfs" -c . \
    | podman import --quiet --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null \
    || die "podman import of the debootstrapped bookworm failed"
  rm -rf "$rootfs"
fi
podman image inspect --format 'size {{.Size}} bytes' "$DEBIAN_IMAGE"

# ---------------------------------------------------------------------------
step "build image $RUST_IMAGE (this machine's Rust toolchain)"
command -v rustc >/dev/null || die "no rustc on PATH: the local $RUST_IMAGE is made from this machine's toolchain"
SYSROOT=$(rustc --print sysroot)
RUSTC_VERSION=$(rustc --version)
TOOLCHAIN=$(basename "$SYSROOT")
[ -x "$SYSROOT/bin/cargo" ] || die "the toolchain at $SYSROOT has no cargo"
echo "toolchain $TOOLCHAIN at $SYSROOT: $RUSTC_VERSION"
# Where this machine reaches crates.io through a TLS-inspecting proxy, cargo
# inside the build must trust the proxy's CA as the host does: the image
# gets the host's CA bundle (in place of Debian's) rather than a --volume on
# the build, which would also hide /etc/ssl/certs from the runtime stage's
# `apt-get install ca-certificates`.
HOST_CA=/etc/ssl/certs/ca-certificates.crt
[ -s "$HOST_CA" ] || die "no CA bundle at $HOST_CA on the host (cargo in the build needs one for crates.io)"
SOURCE="$RUSTC_VERSION; CA bundle sha256 $(sha256sum "$HOST_CA" | cut -c1-16)"
have=$(podman image inspect --format '{{index .Labels "herald.ct.source"}}' "$RUST_IMAGE" 2>/dev/null || true)
if [ "$have" = "$SOURCE" ]; then
  echo "cached: $(podman image inspect --format '{{.Id}} created {{.Created}}' "$RUST_IMAGE")"
else
  ctr=$(buildah from --pull=never "$DEBIAN_IMAGE")
  # As the official image (buildpack-deps): a C toolchain for crates that
  # build C (ring, mimalloc, SQLite), and CA certificates for crates.io.
  buildah run --network host "$ctr" -- sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates gcc libc6-dev pkg-config make >/dev/null && rm -rf /var/lib/apt/lists/*' \
    || { buildah rm "$ctr" >/dev/null; die "apt-get inside $DEBIAN_IMAGE failed (is $MIRROR reachable?)"; }
  mnt=$(buildah mount "$ctr")
  dest=$mnt/usr/local/rustup/toolchains/$TOOLCHAIN
  mkdir -p "$dest" "$mnt/usr/local/cargo/bin"
  # The toolchain without its 800 MB of HTML docs.
  tar -C "$SYSROOT" --exclude=./share/doc -c . | tar -C "$dest" -x
  for bin in "$dest"/bin/*; do
    ln -s "/usr/local/rustup/toolchains/$TOOLCHAIN/bin/$(basename "$bin")" "$mnt/usr/local/cargo/bin/"
  done
  cp "$HOST_CA" "$mnt/etc/ssl/certs/ca-certificates.crt"
  buildah umount "$ctr" >/dev/null
  buildah config \
    --env RUSTUP_HOME=/usr/local/rustup \
    --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env "RUST_VERSION=$(rustc --version | cut -d' ' -f2)" \
    --label "herald.ct.source=$SOURCE" \
    --cmd bash "$ctr"
  buildah commit --rm --quiet "$ctr" "$RUST_IMAGE" >/dev/null
  podman run --rm --network none "$RUST_IMAGE" cargo --version \
    || die "cargo does not run inside the local $RUST_IMAGE"
fi
podman image inspect --format 'size {{.Size}} bytes' "$RUST_IMAGE"

# ---------------------------------------------------------------------------
step "podman build --format docker -t $IMAGE . (the repository's Dockerfile)"
# Host networking for RUN steps (apt-get, crates.io): nothing to set up.
common=(--format docker --pull=never --network host)
build_args=("${common[@]}" -t "$IMAGE")
if [ "${HERALD_CT_NO_CACHE:-}" = 1 ]; then
  build_args+=(--no-cache)
fi
BUILD_T0=$(date +%s.%N)
# The whole log is long (every crate compiled); show the steps and the end.
build_rc=0
podman build "${build_args[@]}" . 2>&1 | tee "$WORK/build.log" \
  | { grep --line-buffered -E 'STEP [0-9]+/|^COMMIT|^--> Using cache| Compiling herald |Finished ' || true; } \
  || build_rc=$?
[ "$build_rc" -eq 0 ] || { tail -n 60 "$WORK/build.log" >&2; die "podman build failed with exit code $build_rc (last lines above)"; }
BUILD_S=$(elapsed "$BUILD_T0")
if grep -q 'Compiling tokio ' "$WORK/build.log"; then
  CACHE="cold: dependencies and herald compiled"
elif grep -q 'Compiling herald ' "$WORK/build.log"; then
  CACHE="warm dependency layer: herald compiled"
else
  CACHE="every layer cached"
fi
IMAGE_BYTES=$(podman image inspect --format '{{.Size}}' "$IMAGE")
IMAGE_MB=$(awk -v b="$IMAGE_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "built in $BUILD_S s ($CACHE); image $IMAGE_BYTES bytes ($IMAGE_MB MB)"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110 | head -n 12
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 10001:10001 ] \
  || die "the image's USER is not 10001:10001"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q healthcheck \
  || die "the image has no HEALTHCHECK (was it built with --format docker?)"
# Each change of the sources leaves a few hundred MB of untagged layers
# behind. Tag the build stage too (all cached: seconds), so that removing
# untagged (dangling) images drops earlier builds and never the current
# cache.
podman build "${common[@]}" --target build -t "$IMAGE-build" . >/dev/null \
  || die "tagging the build stage failed"
echo "removed $(podman image prune --force | wc -l) untagged images of earlier builds"

# ---------------------------------------------------------------------------
step "start an SMTP server on the host (tests/smtp_server.py)"
mkdir -p "$WORK/mail"
python3 tests/smtp_server.py --port 0 --store "$WORK/mail" >"$WORK/smtp.out" 2>"$WORK/smtp.err" &
SMTP_PID=$!
for _ in $(seq 100); do
  grep -q '^READY ' "$WORK/smtp.out" && break
  kill -0 "$SMTP_PID" 2>/dev/null || { cat "$WORK/smtp.err" >&2; die "tests/smtp_server.py exited"; }
  sleep 0.1
done
SMTP_PORT=$(awk '/^READY /{ print $2 }' "$WORK/smtp.out")
[ -n "$SMTP_PORT" ] || die "tests/smtp_server.py did not say READY within 10 s"
echo "SMTP on 127.0.0.1:$SMTP_PORT"

# ---------------------------------------------------------------------------
step "podman run: sample content mounted read-only, feeds and data on volumes"
# The sample content, readable by the container's uid 10001.
cp -r content "$WORK/content"
chmod -R a+rX "$WORK"
# Host networking: the SMTP server listens on the host's loopback only. The
# port is a free one, in place of the image's 8080, so nothing else on the
# machine is in the way; the address stays the image's 0.0.0.0, which the
# HEALTHCHECK reaches through loopback.
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$HTTP_PORT
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# podman logs "unable to get systemd connection ... healthchecks" errors
# here and at removal: it schedules the image's periodic health checks with
# systemd timers, and this machine runs no systemd. The check itself is run
# by hand below.
RUN_T0=$(date +%s.%N)
podman run --detach --name "$NAME" --network host \
  --volume "$WORK/content:/srv/herald/content:ro" \
  --volume "$NAME-feeds:/srv/herald/feeds" \
  --volume "$NAME-data:/srv/herald/data" \
  --env "HERALD_SERVER__LISTEN=0.0.0.0:$HTTP_PORT" \
  --env HERALD_MAIL__TRANSPORT=smtp \
  --env HERALD_MAIL__SMTP__HOST=127.0.0.1 \
  --env "HERALD_MAIL__SMTP__PORT=$SMTP_PORT" \
  --env HERALD_MAIL__SMTP__TLS=none \
  --env "HERALD_SUBSCRIBERS__SECRET=$SECRET" \
  "$IMAGE" >/dev/null || die "podman run failed"

ready=
while [ "$(elapsed "$RUN_T0" | cut -d. -f1)" -lt 60 ]; do
  if [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" != true ]; then
    die "the container exited during start-up with code $(podman inspect --format '{{.State.ExitCode}}' "$NAME")"
  fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.05
done
READY_S=$(elapsed "$RUN_T0")
[ -n "$ready" ] || die "/readyz did not answer 200 within 60 s of podman run"
echo "/readyz answered 200 $READY_S s after podman run"

# ---------------------------------------------------------------------------
step "a feed: GET /atom.xml, parsed by feedparser"
code=$(curl -s -o "$WORK/atom.xml" -w '%{http_code}' --max-time 10 "$BASE/atom.xml")
[ "$code" = 200 ] || die "GET /atom.xml answered $code"
python3 - "$WORK/atom.xml" <<'EOF' || die "the served /atom.xml is not a valid feed (above)"
import sys, feedparser
d = feedparser.parse(sys.argv[1])
if d.bozo:
    sys.exit(f"feedparser: {d.bozo_exception}")
if d.version != "atom10" or not d.entries:
    sys.exit(f"expected Atom 1.0 with entries, got {d.version!r} with {len(d.entries)} entries")
print(f"{d.version}: {d.feed.title!r}, {len(d.entries)} entries, newest {d.entries[0].title!r}")
EOF

# ---------------------------------------------------------------------------
step "mail: subscribing through the form sends a confirmation to the host's SMTP server"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  --data-urlencode email=reader@example.org --data-urlencode schedule=weekly "$BASE/subscribe")
[ "$code" = 200 ] || die "POST /subscribe answered $code"
mail=
for _ in $(seq 200); do
  mail=$(find "$WORK/mail" -name '*reader@example.org.eml' | head -n 1)
  [ -n "$mail" ] && break
  sleep 0.1
done
[ -n "$mail" ] || die "no confirmation mail reached 127.0.0.1:$SMTP_PORT within 20 s"
grep -q '/confirm?token=' "$mail" || die "the mail in $mail carries no confirmation link"
echo "received $(basename "$mail"): $(grep -m1 -i '^Subject:' "$mail")"

# ---------------------------------------------------------------------------
step "podman healthcheck run (the image's HEALTHCHECK: herald healthcheck --ready)"
out=$(podman healthcheck run "$NAME" 2>&1) || die "podman healthcheck run failed: $out"
echo "podman healthcheck run: ${out:-exit 0}"
status=$(podman inspect --format '{{.State.Health.Status}}' "$NAME")
echo "health status: $status"
[ "$status" = healthy ] || die "podman inspect says the container is '$status', not healthy"
podman exec "$NAME" herald healthcheck || die "herald healthcheck inside the container failed"

# ---------------------------------------------------------------------------
step "the daemon is PID 1 and not root"
pid1=$(podman exec "$NAME" cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in
  "herald run ") echo "PID 1: $pid1" ;;
  *) die "PID 1 in the container is '$pid1', not 'herald run'" ;;
esac
uid=$(podman exec "$NAME" sh -c 'awk "/^Uid:/ { print \$2 }" /proc/1/status')
user=$(podman exec "$NAME" id -un "$uid")
echo "PID 1 runs as uid $uid ($user)"
[ "$uid" != 0 ] || die "the daemon runs as root"
podman top "$NAME" user huser pid args

# ---------------------------------------------------------------------------
step "podman stop: SIGTERM, clean exit"
STOP_T0=$(date +%s.%N)
podman stop --time 30 "$NAME" >/dev/null
STOP_S=$(elapsed "$STOP_T0")
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
echo "stopped in $STOP_S s, exit code $exit_code"
[ "$exit_code" = 0 ] || die "herald exited with code $exit_code after SIGTERM, not 0"
podman logs --tail 3 "$NAME"

# ---------------------------------------------------------------------------
step "backup: the data volume read after the stop (tar in a throwaway container)"
# The README's recipe. (Not `podman cp`: podman 4.3 copies nothing out of
# the volumes of a stopped container, and says nothing. Not --volumes-from:
# podman refuses it beside the image's own VOLUME of the same path.)
podman run --rm --network none --no-healthcheck --volume "$NAME-data:/srv/herald/data" \
  --entrypoint tar "$IMAGE" -C /srv/herald -c data >"$WORK/backup.tar" \
  || die "reading the data volume with tar failed"
tar -C "$WORK" -xf "$WORK/backup.tar"
ls -ln "$WORK/data"
[ -s "$WORK/data/herald.sqlite3" ] || die "no herald.sqlite3 in the backup of the data volume"
python3 - "$WORK/data/herald.sqlite3" <<'EOF' || die "the copied database is not sound (above)"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
check = db.execute("PRAGMA integrity_check").fetchone()[0]
rows = db.execute("SELECT email, status FROM subscribers").fetchall()
if check != "ok" or ("reader@example.org", "pending") not in rows:
    sys.exit(f"integrity_check: {check}; subscribers: {rows}")
print(f"integrity_check ok; subscribers: {rows}")
EOF

step "summary"
echo "image $IMAGE: $IMAGE_MB MB"
echo "podman build: $BUILD_S s ($CACHE)"
echo "start to /readyz 200: $READY_S s"
echo "podman stop: $STOP_S s, exit code 0"
echo "container test passed in $(elapsed "$T0") s"
