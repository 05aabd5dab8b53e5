"""dkimpy's verdict on each DKIM-Signature of a message, one signature at a time.

Run by tests/support/dkim_verify.rs with Debian's /usr/bin/python3 (package python3-dkim):

    dkim_verify.py MESSAGE_FILE KEYS_JSON_FILE

KEYS_JSON_FILE maps "<selector>._domainkey.<domain>" to the whole TXT value of the key record.
It stands in for DNS through dkimpy's `dnsfunc`, so nothing is looked up on the network.
Prints a JSON list, one object per DKIM-Signature from the top of the message:
{"index", "tags", "pass", "error", "lookups"}.
"""

import json
import logging
import re
import sys

import dkim
from dkim.util import parse_tag_value


class Collect(logging.Handler):
    """Keeps dkimpy's error messages: a False verdict says why only through its logger."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def text(value):
    return value.decode("utf-8", "replace")


def main():
    with open(sys.argv[1], "rb") as f:
        message = f.read()
    with open(sys.argv[2], encoding="utf-8") as f:
        keys = {name.lower().rstrip("."): value.encode() for name, value in json.load(f).items()}

    try:
        headers, _ = dkim.rfc822_parse(message)
    except dkim.DKIMException as e:
        # A header section dkimpy cannot read fails every signature it holds.
        error = "%s: %s" % (type(e).__name__, e)
        count = len(re.findall(rb"(?im)^dkim-signature[ \t]*:", message.split(b"\r\n\r\n")[0]))
        results = [{"index": i, "tags": {}, "pass": False, "error": error, "lookups": []} for i in range(count)]
        json.dump(results, sys.stdout)
        return
    signatures = [value for name, value in headers if name.lower() == b"dkim-signature"]
    results = []
    for index, value in enumerate(signatures):
        lookups = []

        def dnsfunc(name, timeout=5):
            name = text(name).lower().rstrip(".")
            lookups.append(name)
            return keys.get(name)

        collect = Collect()
        logger = logging.getLogger("dkim_verify.%d" % index)
        logger.addHandler(collect)
        logger.propagate = False
        try:
            tags = {text(k): text(v) for k, v in parse_tag_value(value).items()}
        except Exception as e:  # a malformed tag list is a failed signature, not a crash
            tags = {}
            collect.messages.append("unparsable tag list: %s" % e)
        error = None
        try:
            passed = bool(dkim.DKIM(message, logger=logger).verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException as e:
            passed = False
            error = "%s: %s" % (type(e).__name__, e)
        if not passed and error is None:
            error = "; ".join(collect.messages) or "signature did not verify"
        results.append({"index": index, "tags": tags, "pass": passed, "error": error, "lookups": lookups})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
