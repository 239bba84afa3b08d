#!/usr/bin/env bash
# bench-http.sh: HTTP throughput of `herald run`, side by side with nginx
# serving the very same file, on this machine, in the same run.
#
# What it measures, for each server, with the same wrk settings:
#   200 path  GET /atom.xml, identity (no Accept-Encoding), full body
#   304 path  GET /atom.xml with `If-None-Match: <that server's own ETag>`
# and prints, for each path, requests/s, latency p50/p99, the ratio
# herald/nginx and each server's CPU time per request (steadier than
# requests/s when other work shares the machine). The target (from the
# issue) is herald >= 100% of nginx's requests/s on both paths.
# Compressed responses (gzip/br) are not compared: nginx would have to
# compress differently, so the bodies would not be the same.
#
# How: installs wrk and nginx-light from Debian if missing (needs root;
# any service the package starts is stopped and disabled), builds herald
# with `cargo build --release --locked`, generates a site of 60 Markdown
# articles in a temporary directory, starts `herald run` on a free
# loopback port and its own nginx instance (own config, own pid file,
# `daemon off`, not the system service) on another, checks that both
# serve byte-identical /atom.xml, then runs wrk against each server,
# interleaved (nginx, herald, then herald, nginx, ...), keeping each
# server's best run. Everything listens on 127.0.0.1 only; everything
# started is stopped and the temporary directory removed on exit.
#
# Run from anywhere (about 1.5 minutes with the defaults, plus the build):
#   bash scripts/bench-http.sh
# Knobs (environment):
#   BENCH_SECONDS=10     wrk duration of each run
#   BENCH_ROUNDS=2       runs per server and path (best one is reported)
#   BENCH_THREADS=2      wrk threads
#   BENCH_CONNECTIONS=64 wrk connections
#   HERALD_BIN=path      use this herald binary instead of building one
#
# Note: wrk and both servers share this machine's cores, so the absolute
# numbers are a loopback figure, not a capacity estimate; the ratio is
# the point. Exit status is non-zero only when the benchmark could not be
# run (install, build, start-up, a wrong response); missing the target is
# reported, not an error.

set -euo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
TARGET_PERCENT=100
HOST=127.0.0.1

die() {
    echo "bench-http: error: $*" >&2
    exit 1
}
note() {
    echo "bench-http: $*" >&2
}

for knob in BENCH_SECONDS BENCH_ROUNDS BENCH_THREADS BENCH_CONNECTIONS; do
    [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, not '${!knob}'"
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORES=$(nproc 2>/dev/null || echo 2)

# ---------------------------------------------------------------- cleanup

TMP=""
HERALD_PID=""
POLICY_RC_CREATED=0
NGINX_PID=""

stop_pid() { # pid, name
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "$2 (pid $pid) did not stop within 5 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pid "$HERALD_PID" herald
    HERALD_PID=""
    stop_pid "$NGINX_PID" nginx
    NGINX_PID=""
    if ((POLICY_RC_CREATED)); then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        rm -rf -- "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------- 1. wrk and nginx

install_tools() {
    local missing=() nginx_pkg
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
        nginx_pkg=nginx
        if apt-cache policy nginx-light 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            nginx_pkg=nginx-light
        fi
        missing+=("$nginx_pkg")
    fi
    ((${#missing[@]} > 0)) || return 0

    [[ $(id -u) == 0 ]] || die "need to install ${missing[*]}: run as root, or install them first"
    command -v apt-get >/dev/null 2>&1 || die "need ${missing[*]} and apt-get is not available"
    note "installing ${missing[*]} (Debian packages)"
    # Keep the packages' maintainer scripts from starting services; only
    # when nothing already decides that (containers usually have one).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    local ok=1
    apt-get update -qq || ok=0
    if ((ok)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || ok=0
    fi
    if ((POLICY_RC_CREATED)); then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
    ((ok)) || die "apt-get could not install ${missing[*]}"

    # Whatever the package set up as a service: stopped and disabled. The
    # benchmark runs its own nginx with its own config.
    if [[ " ${missing[*]} " == *" nginx"* ]]; then
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            systemctl disable --now nginx.service >/dev/null 2>&1 || true
        else
            if command -v service >/dev/null 2>&1; then
                service nginx stop >/dev/null 2>&1 || true
            fi
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d nginx disable >/dev/null 2>&1 || true
            fi
        fi
    fi
}

install_tools
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx is not installed"
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"

# ------------------------------------------------------------ 2. herald

if [[ -n ${HERALD_BIN:-} ]]; then
    [[ -x $HERALD_BIN ]] || die "HERALD_BIN=$HERALD_BIN is not an executable"
else
    note "building herald (cargo build --release --locked)"
    (cd "$REPO" && cargo build --release --locked --quiet) || die "cargo build --release failed"
    HERALD_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/herald
    [[ $HERALD_BIN == /* ]] || HERALD_BIN=$REPO/$HERALD_BIN
    [[ -x $HERALD_BIN ]] || die "no binary at $HERALD_BIN after the build"
fi
BIN=$HERALD_BIN

TMP=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")
# nginx's workers run as an unprivileged user and must reach the feeds.
chmod 0755 "$TMP"
mkdir -p "$TMP/site/content/posts" "$TMP/site/data" "$TMP/site/feeds" "$TMP/nginx"

# A port nothing listens on yet (bounded tries; loopback only).
free_port() {
    local i port
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 40000))
        [[ $port == "${HERALD_PORT:-}" ]] && continue
        if ! (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no free port on $HOST"
}

# Sixty articles, each a few paragraphs of Markdown with TOML front
# matter, so that the 50-entry Atom feed with full content is ~100-200 KB.
generate_site() {
    local words=(feed reader update syndication archive editor column morning
        budget council river library harbour station market garden season
        report interview review summary draft letter photo record bridge
        weather school museum concert festival election transport energy)
    local tags=(news culture city science sport opinion)
    local nw=${#words[@]} i p s w n file date t1 t2 seed
    seed=7
    for ((i = 1; i <= 60; i++)); do
        file=$(printf '%s/site/content/posts/article-%02d.md' "$TMP" "$i")
        date=$(date -u -d "2024-01-01 00:00:00 UTC + $((i * 3)) days + $((i * 37 % 600)) minutes" +%Y-%m-%dT%H:%M:%SZ)
        t1=${tags[i % ${#tags[@]}]}
        t2=${tags[(i * 5 + 1) % ${#tags[@]}]}
        {
            echo '+++'
            echo "title = \"Article $i: the ${words[i % nw]} and the ${words[(i * 7) % nw]}\""
            echo "date = $date"
            if ((i % 3 == 0)) || [[ $t1 == "$t2" ]]; then
                echo "tags = [\"$t1\"]"
            else
                echo "tags = [\"$t1\", \"$t2\"]"
            fi
            echo '+++'
            echo
            for ((p = 0; p < 5; p++)); do
                for ((s = 0; s < 5; s++)); do
                    n=$((8 + (i + p + s) % 9))
                    line=""
                    for ((w = 0; w < n; w++)); do
                        seed=$(((seed * 1103515245 + 12345) % 2147483648))
                        line+="${words[seed % nw]} "
                    done
                    line=${line% }
                    line=${line^}
                    if ((s == 2 && p % 2 == 0)); then
                        line+=", with *emphasis* and a [link](https://example.org/ref/$i/$p)"
                    fi
                    printf '%s. ' "$line"
                done
                printf '\n\n'
                if ((p == 2)); then
                    printf -- '- first %s\n- second %s & more\n\n' "${words[i % nw]}" "${words[p % nw]}"
                fi
            done
        } >"$file"
    done
}

generate_site

HERALD_PORT=$(free_port)
cat >"$TMP/site/herald.toml" <<EOF
data_dir = "$TMP/site/data"

[site]
title = "Benchmark Site"
description = "Generated by scripts/bench-http.sh"
base_url = "https://bench.example.org/"
language = "en"
timezone = "UTC"
author = { name = "Bench Writer", email = "bench@example.org" }

[content]
dir = "$TMP/site/content"

[feeds]
dir = "$TMP/site/feeds"
limit = 50
content = "full"

[server]
listen = "$HOST:$HERALD_PORT"

[rescan]
watch = false
schedule = "0 0 0 * * *"
EOF

note "starting herald on $HOST:$HERALD_PORT"
(
    # Only this file configures herald: no HERALD_* overrides from outside.
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^HERALD_' || true)
    export HERALD_LOG=warn
    exec "$BIN" run --config "$TMP/site/herald.toml"
) >"$TMP/herald.log" 2>&1 &
HERALD_PID=$!

wait_http() { # url, name, pid, log
    local i code
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$3" 2>/dev/null; then
            cat "$4" >&2 || true
            die "$2 exited during start-up (log above)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    cat "$4" >&2 || true
    die "$2 did not answer 200 at $1 within 30 s (last status: ${code:-none}; log above)"
}
wait_http "http://$HOST:$HERALD_PORT/readyz" herald "$HERALD_PID" "$TMP/herald.log"

FEED=$TMP/site/feeds/atom.xml
[[ -s $FEED ]] || die "herald is ready but wrote no $FEED"
FEED_BYTES=$(stat -c %s "$FEED")

# -------------------------------------------------------------- 1b. nginx

NGINX_PORT=$(free_port)
user_line=""
if [[ $(id -u) == 0 ]]; then
    if id www-data >/dev/null 2>&1; then
        user_line="user www-data;"
    else
        user_line="user nobody nogroup;"
    fi
fi
cat >"$TMP/nginx/nginx.conf" <<EOF
$user_line
worker_processes $CORES;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;

events {
    worker_connections 4096;
}

http {
    types {
        application/atom+xml xml;
        application/feed+json json;
    }
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/atom+xml application/feed+json;
    access_log off;
    sendfile on;
    tcp_nopush on;
    etag on;
    server_tokens off;
    # herald keeps a connection open as long as the client does; let nginx
    # do the same, so neither side pays for reconnects.
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/client_body;

    server {
        listen $HOST:$NGINX_PORT;
        root $TMP/site/feeds;
        # The headers herald sends with a feed, so the responses are alike.
        add_header Cache-Control "public, max-age=300";
        add_header Vary "Accept-Encoding";
        add_header X-Content-Type-Options "nosniff";
        location / {
        }
    }
}
EOF
"$NGINX" -t -q -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    2>"$TMP/nginx/test.log" || {
    cat "$TMP/nginx/test.log" >&2
    die "nginx rejected the generated config"
}
note "starting nginx on $HOST:$NGINX_PORT ($CORES workers)"
"$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
wait_http "http://$HOST:$NGINX_PORT/atom.xml" nginx "$NGINX_PID" "$TMP/nginx/error.log"

# ------------------------------------------------- same bytes, real 304s

declare -A URL ETAG
URL[nginx]="http://$HOST:$NGINX_PORT/atom.xml"
URL[herald]="http://$HOST:$HERALD_PORT/atom.xml"

for server in nginx herald; do
    curl -sf --max-time 10 -o "$TMP/$server.atom.xml" "${URL[$server]}" ||
        die "$server: GET /atom.xml failed"
    cmp -s "$TMP/$server.atom.xml" "$FEED" ||
        die "$server: /atom.xml differs from $FEED ($(stat -c %s "$TMP/$server.atom.xml") vs $FEED_BYTES bytes)"
    enc=$(curl -sI --max-time 10 "${URL[$server]}" | tr -d '\r' |
        awk -F': *' 'tolower($1) == "content-encoding" { print $2 }')
    [[ -z $enc ]] || die "$server: sent Content-Encoding $enc without Accept-Encoding"
    ETAG[$server]=$(curl -sI --max-time 10 "${URL[$server]}" | tr -d '\r' |
        awk -F': *' 'tolower($1) == "etag" { print $2 }')
    [[ -n ${ETAG[$server]} ]] || die "$server: no ETag on /atom.xml"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
        -H "If-None-Match: ${ETAG[$server]}" "${URL[$server]}")
    [[ $code == 304 ]] || die "$server: If-None-Match: ${ETAG[$server]} got $code, not 304"
done
note "both servers send the same $FEED_BYTES bytes; ETag nginx ${ETAG[nginx]}, herald ${ETAG[herald]}; both answer 304"

# ------------------------------------------------------------------ 3. wrk

# Bytes in wrk's "N requests in Xs, Y.YYMB read" (binary units).
to_bytes() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        m = 1
        if (u == "KB") m = 1024; else if (u == "MB") m = 1024^2
        else if (u == "GB") m = 1024^3; else if (u == "TB") m = 1024^4
        printf "%.0f", n * m
    }'
}

# Latency as wrk prints it ("812.00us", "1.20ms", "1.02s") in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        m = 1
        if (u == "us") m = 0.001; else if (u == "s") m = 1000; else if (u == "m") m = 60000
        printf "%.2f", n * m
    }'
}

# CPU time (user + system, clock ticks) a server's processes have used:
# herald's one process, nginx's master and workers. Per request, this is
# less disturbed by other work on the machine than requests/s is.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
server_pids() {
    if [[ $1 == herald ]]; then
        echo "$HERALD_PID"
    else
        echo "$NGINX_PID"
        ps -o pid= --ppid "$NGINX_PID" 2>/dev/null || true
    fi
}
cpu_ticks() {
    local pid total=0 t
    for pid in $(server_pids "$1"); do
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

declare -A BEST_RPS BEST_P50 BEST_P99 ALL_RPS ERRORS CPU_US
WRK_BASE=(wrk "-t$BENCH_THREADS" "-c$BENCH_CONNECTIONS" "-d${BENCH_SECONDS}s" --timeout 5s --latency)
WRK_LINES=()

# One wrk run: server, path (200|304). Records the result; dies when the
# responses were not what the path is about.
bench() {
    local server=$1 path=$2 out args=("${WRK_BASE[@]}")
    out=$TMP/wrk-$server-$path-$((${#WRK_LINES[@]} + 1)).txt
    if [[ $path == 304 ]]; then
        args+=(-H "If-None-Match: ${ETAG[$server]}")
    fi
    args+=("${URL[$server]}")
    WRK_LINES+=("$(printf '%-6s %s: ' "$server" "$path")$(printf '%q ' "${args[@]}")")
    local cpu_before cpu_after cpu_us
    cpu_before=$(cpu_ticks "$server")
    "${args[@]}" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk failed against $server ($path path)"
    }
    cpu_after=$(cpu_ticks "$server")
    local rps requests bytes_read p50 p99 non2xx sockerr per_req
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    requests=$(awk '/ requests in / { print $1 }' "$out")
    bytes_read=$(awk '/ requests in / { print $NF == "read" ? $(NF - 1) : "" }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
    sockerr=$(awk '/Socket errors/ { sub(/^ *Socket errors: */, ""); print }' "$out")
    if [[ -z $rps || -z $requests || -z $bytes_read || -z $p50 || -z $p99 ]]; then
        cat "$out" >&2
        die "could not read wrk's output ($server, $path path)"
    fi
    ((requests > 0)) || die "wrk made no requests to $server ($path path)"
    [[ -z $non2xx ]] || {
        cat "$out" >&2
        die "$server answered $non2xx requests with an error status ($path path)"
    }
    # wrk does not tell 200 from 304: the bytes read per response do.
    per_req=$(($(to_bytes "$bytes_read") / requests))
    if [[ $path == 200 ]] && ((per_req < FEED_BYTES * 95 / 100)); then
        die "$server: ~$per_req bytes per response on the 200 path; the feed is $FEED_BYTES"
    fi
    if [[ $path == 304 ]] && ((per_req > 2048)); then
        die "$server: ~$per_req bytes per response on the 304 path; not 304s"
    fi
    [[ -z $sockerr ]] || ERRORS[$server/$path]+="${ERRORS[$server/$path]:+; }$sockerr"

    cpu_us=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    if [[ -z ${CPU_US[$server/$path]:-} ]] ||
        awk -v a="$cpu_us" -v b="${CPU_US[$server/$path]}" 'BEGIN { exit !(a < b) }'; then
        CPU_US[$server/$path]=$cpu_us
    fi

    ALL_RPS[$server/$path]+="${ALL_RPS[$server/$path]:+ }$rps"
    if [[ -z ${BEST_RPS[$server/$path]:-} ]] ||
        awk -v a="$rps" -v b="${BEST_RPS[$server/$path]}" 'BEGIN { exit !(a > b) }'; then
        BEST_RPS[$server/$path]=$rps
        BEST_P50[$server/$path]=$(to_ms "$p50")
        BEST_P99[$server/$path]=$(to_ms "$p99")
    fi
    note "$(printf '%-6s %s path: %10s req/s  p50 %s  p99 %s  server CPU %s us/req  (~%s bytes/response)' \
        "$server" "$path" "$rps" "$p50" "$p99" "$cpu_us" "$per_req")"
}

# A short warm-up of each server (page cache, connection setup,
# compression cells), not reported.
for server in nginx herald; do
    wrk -t1 -c8 -d1s "${URL[$server]}" >/dev/null 2>&1 || die "wrk warm-up against $server failed"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
note "benchmarking: ${BENCH_ROUNDS} rounds x 2 paths x 2 servers x ${BENCH_SECONDS}s (load average $LOAD_BEFORE)"
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(nginx herald); else order=(herald nginx); fi
    for path in 200 304; do
        for server in "${order[@]}"; do
            bench "$server" "$path"
        done
    done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
kill -0 "$HERALD_PID" 2>/dev/null || die "herald exited during the benchmark"
kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited during the benchmark"

# --------------------------------------------------------------- 4. table

echo
echo "herald vs nginx, GET /atom.xml ($FEED_BYTES bytes), loopback, $CORES cores shared by wrk and the server"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes $CORES, sendfile on, access_log off"
echo "wrk: ${WRK_BASE[*]} (+ -H 'If-None-Match: <etag>' on the 304 path); best of $BENCH_ROUNDS runs per cell"
echo "load average before/after: $LOAD_BEFORE / $LOAD_AFTER (other work on the machine skews both servers)"
echo
printf '%-19s %12s %12s %6s %17s %17s %13s %13s\n' path "nginx req/s" "herald req/s" ratio \
    "nginx p50/p99 ms" "herald p50/p99 ms" "nginx CPU us" "herald CPU us"
verdict=()
for path in 200 304; do
    case $path in
    200) label="200 GET /atom.xml" ;;
    304) label="304 If-None-Match" ;;
    esac
    n=${BEST_RPS[nginx/$path]}
    h=${BEST_RPS[herald/$path]}
    ratio=$(awk -v h="$h" -v n="$n" 'BEGIN { printf "%.0f%%", 100 * h / n }')
    printf '%-19s %12s %12s %6s %17s %17s %13s %13s\n' "$label" "$n" "$h" "$ratio" \
        "${BEST_P50[nginx/$path]}/${BEST_P99[nginx/$path]}" \
        "${BEST_P50[herald/$path]}/${BEST_P99[herald/$path]}" \
        "${CPU_US[nginx/$path]}" "${CPU_US[herald/$path]}"
    if awk -v h="$h" -v n="$n" -v t="$TARGET_PERCENT" 'BEGIN { exit !(100 * h >= t * n) }'; then
        verdict+=("$path: met ($ratio)")
    else
        verdict+=("$path: MISSED ($ratio)")
    fi
done
echo "(req/s and latency: the best run; CPU us: server CPU time per request, lowest over the runs)"
echo
echo "all runs (req/s):"
for path in 200 304; do
    for server in nginx herald; do
        printf '  %-6s %s path: %s\n' "$server" "$path" "${ALL_RPS[$server/$path]}"
    done
done
echo "wrk command lines:"
printf '%s\n' "${WRK_LINES[@]}" | sort -u | sed 's/^/  /'
for key in "${!ERRORS[@]}"; do
    echo "  socket errors, $key: ${ERRORS[$key]}"
done
echo
echo "target: herald >= ${TARGET_PERCENT}% of nginx on both paths -> ${verdict[*]}"
