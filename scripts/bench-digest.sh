#!/usr/bin/env bash
# bench-digest.sh: installs Postfix's test tools and PostgreSQL if missing
# and runs the digest benchmark (benches/digest.rs): one digest run to
# 10,000 and 100,000 subscribers through herald's ledger and SMTP pool to
# `smtp-sink` on loopback, beside `smtp-source` sending the same number
# of messages of the same bytes over as many reused connections; on SQLite
# and on PostgreSQL, sent by one herald process and by three.
#
#   bash scripts/bench-digest.sh                       (defaults: both backends, 1 and 3 replicas)
#   bash scripts/bench-digest.sh 10000 --pools=4,8,16  (arguments go to the bench)
#
# PostgreSQL is a private cluster in a temporary folder (initdb and pg_ctl
# as user nobody when run as root), on a free loopback port, stopped and
# removed at the end.
#
# smtp-sink and smtp-source come with Debian's `postfix` package. It is
# installed (as root) with service start-up refused by a temporary
# policy-rc.d, so no Postfix daemon is left running; the bench starts its
# own smtp-sink on a free 127.0.0.1 port and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "bench-digest: $*" >&2
    exit 1
}

have_tools() {
    [[ -x /usr/sbin/smtp-sink && -x /usr/sbin/smtp-source ]] ||
        { command -v smtp-sink && command -v smtp-source; } >/dev/null 2>&1
}

if ! have_tools; then
    [[ $(id -u) -eq 0 ]] || die "smtp-sink/smtp-source missing; run as root to install postfix"
    command -v apt-get >/dev/null 2>&1 || die "smtp-sink/smtp-source missing and no apt-get"
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    ok=1
    apt-get update -qq || ok=0
    if ((ok)); then
        # postfix's postinst may grumble without a mail name; the tools
        # are installed all the same.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null || ok=0
    fi
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable --now postfix.service >/dev/null 2>&1 || true
    fi
    have_tools || die "installing postfix did not bring smtp-sink and smtp-source (ok=$ok)"
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $pg_bin ]]; then
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL missing; run as root to install postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi
}
pg_dir=$(mktemp -d /tmp/herald-bench-pg.XXXXXX)
pg_password=bench-$RANDOM$RANDOM
printf '%s' "$pg_password" >"$pg_dir/pw"
[[ $(id -u) -eq 0 ]] && chown -R nobody "$pg_dir"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U herald --auth=scram-sha-256 \
    --pwfile="$pg_dir/pw" -E UTF8 --locale=C >/dev/null
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=100" start >/dev/null
stop_pg() {
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_pg EXIT
export HERALD_BENCH_PG="postgres://herald@127.0.0.1:$pg_port"
export HERALD_BENCH_PG_PASSWORD=$pg_password

args=("$@")
((${#args[@]})) || args=(--backends=sqlite,postgres --replicas=1,3 --pools=8)
cargo bench --locked --bench digest -- "${args[@]}"
