# Verifies every DKIM-Signature of one message with dkimpy (Debian python3-dkim), each on its
# own, with the public keys handed over through dnsfunc instead of DNS.
# usage: /usr/bin/python3 dkimpy_verify.py MESSAGE KEYS_JSON   (KEYS_JSON: {"sel._domainkey.d": "v=DKIM1; ..."})
# Prints "a=<algorithm> s=<selector> ok|FAIL" per signature; exits 1 unless all verify and
# there is at least one.
import json
import sys

import dkim
from dkim.util import parse_tag_value

message = open(sys.argv[1], "rb").read()
keys = {name.rstrip(".").lower(): txt.encode() for name, txt in json.load(open(sys.argv[2])).items()}


def dnsfunc(name, timeout=5):
    return keys.get(name.decode().rstrip(".").lower())


d = dkim.DKIM(message)
signatures = [value for name, value in d.headers if name.lower() == b"dkim-signature"]
ok = bool(signatures)
for i, value in enumerate(signatures):
    tags = parse_tag_value(value)
    good = dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)
    ok = ok and good
    print("a=%s s=%s %s" % (tags[b"a"].decode(), tags[b"s"].decode(), "ok" if good else "FAIL"))
sys.exit(0 if ok else 1)
