#!/usr/bin/env python3
"""A real SMTP server for herald's integration tests, on 127.0.0.1.

    python3 tests/smtp_server.py --port 0 --store DIR [--control FILE]
        [--smtputf8] [--auth] [--tls-cert PEM --tls-key PEM]

Prints `READY <port>` once it listens. Every accepted message is stored
in DIR once per recipient as `<seq>-<recipient>.eml` holding the raw DATA
bytes (written to a hidden temporary file first, then renamed). Counters
go to DIR/stats.json after every change; each message's envelope (MAIL
FROM and recipients) is appended to DIR/envelopes.jsonl.

The optional control file is JSON, read again at every connection and
command, so a test can change the server's behaviour while it runs:

    {
      "rcpt_reject": {"bounce@example.org": "550 5.1.1 No such user"},
      "temp_fail_first": 2,
      "temp_fail_reply": "451 4.3.0 Try again later",
      "temp_fail_stage": "rcpt",
      "drop_connection_first": 1,
      "data_delay_ms": 0
    }

- rcpt_reject: recipients (any case) answered with the given reply at RCPT.
- temp_fail_first: the next N commands at temp_fail_stage ("rcpt", the
  default, or "data": after the message was received) get temp_fail_reply;
  "data_crash": the handler fails after the message was received.
- drop_connection_first: the next N DATA commands are answered by closing
  the connection abruptly, without a reply.
- data_delay_ms: wait this long before answering the end of DATA.

--smtputf8 makes the server offer SMTPUTF8 (RFC 6531), so that addresses
with non-ASCII local parts are accepted; without it such an envelope must
be refused by the client. --auth offers AUTH PLAIN and LOGIN without TLS,
accepts any credentials, and appends each login as a JSON line
{"login": ..., "password": ...} to DIR/auth.jsonl.

"Next N" counts from the moment the control file last changed, so writing
a new control file starts a fresh sequence of failures.

With --tls-cert and --tls-key the server offers STARTTLS with that
certificate (and its chain, in the same PEM file). Needs aiosmtpd
(`pip install aiosmtpd`).
"""

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import ssl
import sys

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

DEFAULT_TEMP_FAIL = "451 4.3.0 Try again later"
KNOWN_KEYS = {
    "rcpt_reject",
    "temp_fail_first",
    "temp_fail_reply",
    "temp_fail_stage",
    "drop_connection_first",
    "data_delay_ms",
}


def write_atomically(path, data):
    # No fsync: readers are the tests on this machine, and a killed server
    # process loses nothing the kernel already holds. Syncing every message
    # would block the event loop and make the server the bottleneck.
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def safe_name(address):
    """A recipient as a file name part: unusual characters become `_`."""
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", address)


class State:
    """Counters, the control file and the message store of one server."""

    def __init__(self, store, control_path):
        self.store = store
        self.control_path = control_path
        self.control_text = None
        self.control = {}
        # Failures handed out since the control file last changed.
        self.temp_failed = 0
        self.dropped_since_change = 0
        self.stats = {
            "connections": 0,
            "messages_accepted": 0,
            "recipients_accepted": 0,
            "temp_failures": 0,
            "rejects": 0,
            "dropped": 0,
        }
        stats_path = os.path.join(store, "stats.json")
        # A restarted server (same DIR) keeps counting where it stopped.
        if os.path.exists(stats_path):
            with open(stats_path, encoding="utf-8") as f:
                self.stats.update(json.load(f))
        self.seq = 1 + max(
            (int(n.split("-", 1)[0]) for n in os.listdir(store) if re.match(r"^\d+-.*\.eml$", n)),
            default=0,
        )
        self.write_stats()

    def reload(self):
        if not self.control_path:
            return self.control
        try:
            with open(self.control_path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        if text != self.control_text:
            self.control_text = text
            try:
                control = json.loads(text) if text.strip() else {}
            except json.JSONDecodeError as e:
                print(f"smtp_server: control file is not JSON: {e}", file=sys.stderr)
                control = {}
            unknown = set(control) - KNOWN_KEYS
            if unknown:
                print(f"smtp_server: unknown control keys {sorted(unknown)}", file=sys.stderr)
            self.control = control
            self.temp_failed = 0
            self.dropped_since_change = 0
        return self.control

    def count(self, key, n=1):
        self.stats[key] += n
        self.write_stats()

    def write_stats(self):
        data = json.dumps(self.stats, indent=2, sort_keys=True).encode()
        write_atomically(os.path.join(self.store, "stats.json"), data)

    def take_temp_failure(self, stage):
        control = self.reload()
        if control.get("temp_fail_stage", "rcpt") != stage:
            return None
        if self.temp_failed >= int(control.get("temp_fail_first", 0)):
            return None
        self.temp_failed += 1
        self.count("temp_failures")
        return control.get("temp_fail_reply", DEFAULT_TEMP_FAIL)

    def take_drop(self):
        control = self.reload()
        if self.dropped_since_change >= int(control.get("drop_connection_first", 0)):
            return False
        self.dropped_since_change += 1
        self.count("dropped")
        return True

    def record_login(self, server, session, envelope, mechanism, auth_data):
        line = json.dumps(
            {
                "login": auth_data.login.decode("utf-8", "replace"),
                "password": auth_data.password.decode("utf-8", "replace"),
            }
        )
        with open(os.path.join(self.store, "auth.jsonl"), "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return AuthResult(success=True)

    def store_message(self, recipients, data, mail_from=None):
        seq = self.seq
        self.seq += 1
        for rcpt in recipients:
            name = f"{seq:06}-{safe_name(rcpt)}.eml"
            write_atomically(os.path.join(self.store, name), data)
        # The envelope, one JSON line per message: what a final MTA would
        # record as Return-Path, for the bounce tests.
        with open(os.path.join(self.store, "envelopes.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"seq": seq, "from": mail_from, "to": recipients}) + "\n")
        self.stats["recipients_accepted"] += len(recipients)
        self.count("messages_accepted")
        return seq


class Handler:
    def __init__(self, state):
        self.state = state

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        control = self.state.reload()
        rejects = {k.lower(): v for k, v in control.get("rcpt_reject", {}).items()}
        reply = rejects.get(address.lower())
        if reply:
            self.state.count("rejects")
            return reply
        reply = self.state.take_temp_failure("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        control = self.state.reload()
        delay = int(control.get("data_delay_ms", 0))
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        reply = self.state.take_temp_failure("data")
        if reply:
            return reply
        if self.state.take_temp_failure("data_crash"):
            # aiosmtpd answers "500 Error: (RuntimeError) ..." and, unlike
            # after a reply, keeps the transaction's envelope: the next
            # MAIL without RSET is "503 Error: nested MAIL command".
            raise RuntimeError("the message store failed")
        seq = self.state.store_message(
            envelope.rcpt_tos, envelope.original_content, envelope.mail_from
        )
        return f"250 2.0.0 OK queued as {seq}"


class ControlledSMTP(SMTP):
    """aiosmtpd's server with two test hooks: counting connections and
    dropping a connection at DATA."""

    def __init__(self, handler, state, smtputf8=False, auth=False, tls_context=None):
        options = {}
        if auth:
            options = {"authenticator": state.record_login, "auth_require_tls": False}
        # A fixed host name: `socket.getfqdn()` may wait on DNS.
        super().__init__(
            handler,
            hostname="smtp.test",
            ident="herald test SMTP",
            enable_SMTPUTF8=smtputf8,
            tls_context=tls_context,
            **options,
        )
        self.state = state

    def connection_made(self, transport):
        super().connection_made(transport)
        # Replies are small writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACKs stall each one for tens of ms.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state.reload()
        self.state.count("connections")

    async def smtp_DATA(self, arg):
        if self.state.take_drop():
            # Abrupt close: no reply, no QUIT, as a crashing server would.
            self.transport.abort()
            return
        # aiosmtpd reads the body one line at a time, which made this server
        # the bottleneck of tests sending thousands of messages. Same checks
        # and replies, but the body is read in large chunks.
        if await self.check_helo_needed():
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buf = bytearray(b"\r\n")  # so that an empty body still ends in CRLF.CRLF
        while True:
            chunk = await self._reader.read(1 << 16)
            if not chunk:
                return  # the client went away mid-message
            start = max(0, len(buf) - 4)
            buf += chunk
            end = buf.find(b"\r\n.\r\n", start)
            if end != -1:
                break
        rest = bytes(buf[end + 5:])
        if rest:
            # A pipelined command after the message: leave it to be read.
            self._reader._buffer[:0] = rest
        body = bytes(buf[2:end + 2])
        # Undo dot-stuffing (RFC 5321 section 4.5.2).
        body = b"\r\n".join(
            line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n")
        )
        self.envelope.original_content = body
        self.envelope.content = body
        status = await self._call_handler_hook("DATA")
        await self.push("250 OK" if status is MISSING else status)
        self._set_post_data_state()


async def serve(args):
    os.makedirs(args.store, exist_ok=True)
    state = State(args.store, args.control)
    handler = Handler(state)
    loop = asyncio.get_running_loop()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = await loop.create_server(
        lambda: ControlledSMTP(
            handler, state, smtputf8=args.smtputf8, auth=args.auth, tls_context=tls
        ),
        host="127.0.0.1",
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--store", required=True, help="directory for received messages")
    parser.add_argument("--control", help="JSON file that steers the replies")
    parser.add_argument("--smtputf8", action="store_true", help="offer SMTPUTF8")
    parser.add_argument("--auth", action="store_true", help="offer AUTH, record logins")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) for STARTTLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
