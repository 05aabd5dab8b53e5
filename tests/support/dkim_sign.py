"""Signs a message with dkimpy, to prove the verifier harness on signatures relaykey did not make.

Run by tests/dkim_harness.rs with Debian's /usr/bin/python3 (package python3-dkim):

    dkim_sign.py MESSAGE_FILE ALGORITHM SELECTOR DOMAIN KEY_FILE

ALGORITHM is rsa-sha256 (KEY_FILE: a PEM private key) or ed25519-sha256 (KEY_FILE: the base64 of
the raw 32-byte seed, the form dkimpy takes). Signs relaxed/relaxed over From, To, Subject, Date
and Message-ID, and prints the DKIM-Signature header field (CRLF-terminated) to stdout.
"""

import sys

import dkim


def main():
    message_file, algorithm, selector, domain, key_file = sys.argv[1:6]
    with open(message_file, "rb") as f:
        message = f.read()
    with open(key_file, "rb") as f:
        key = f.read().strip()
    header = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        signature_algorithm=algorithm.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    sys.stdout.buffer.write(header)


if __name__ == "__main__":
    main()
