#!/usr/bin/env python3
"""Verifies the DKIM signature of a message with dkimpy, for herald's tests.

    python3 tests/dkim_verify.py MESSAGE.eml PUBLIC_KEY_BASE64

The public key stands in for the DNS TXT record at
<selector>._domainkey.<domain>, so no DNS is needed. Prints one JSON object
({"verified": bool, "signed_headers": [...]}) and exits 0 when the
signature verifies, 1 when it does not, 3 when dkimpy is not installed.
"""

import json
import sys

try:
    import dkim
except ImportError:
    print("dkimpy is not installed (pip install dkimpy)", file=sys.stderr)
    sys.exit(3)


def main():
    message_path, public_key = sys.argv[1], sys.argv[2]
    with open(message_path, "rb") as f:
        message = f.read()
    record = f"v=DKIM1; k=rsa; p={public_key}".encode()

    def dnsfunc(name, timeout=5):
        return record

    verified = dkim.verify(message, dnsfunc=dnsfunc)
    signed = []
    # The h= tag of the signature header, parsed by hand: the list of
    # signed header names.
    text = message.decode("utf-8", "replace").replace("\r\n ", " ").replace("\r\n\t", " ")
    for line in text.split("\r\n"):
        if line.lower().startswith("dkim-signature:"):
            for tag in line.split(":", 1)[1].split(";"):
                name, _, value = tag.strip().partition("=")
                if name == "h":
                    signed = [h.strip().lower() for h in value.replace(" ", "").split(":")]
    print(json.dumps({"verified": bool(verified), "signed_headers": signed}))
    sys.exit(0 if verified else 1)


if __name__ == "__main__":
    main()
