"""C2SP tlog-cosignature checker (cosignature/v1, Ed25519), written from the specification
text alone (c2sp.org/tlog-cosignature, "Format" and "Ed25519 signed message") with the
`cryptography` package's Ed25519, independent of Credence's code, for tests/tiles.rs.

  cosignature.py NAME PUBKEY_HEX < NOTE
    -> JSON {"lines": n, "verified": [timestamps]}; exit 0 if every signature line of NAME
       whose key ID matches verifies and there is at least one, 1 otherwise.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main():
    name, pubkey = sys.argv[1], bytes.fromhex(sys.argv[2])
    note = sys.stdin.buffer.read()
    # signed-note: the text (ending in a newline), a blank line, then signature lines.
    text, sep, signatures = note.partition(b"\n\n")
    if not sep:
        print(json.dumps({"error": "no blank line before the signatures"}))
        return 1
    body = text + b"\n"
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + pubkey).digest()[:4]
    key = Ed25519PublicKey.from_public_bytes(pubkey)
    lines, verified = 0, []
    for line in signatures.decode().splitlines():
        prefix = "\u2014 " + name + " "
        if not line.startswith(prefix):
            continue
        raw = base64.b64decode(line[len(prefix):], validate=True)
        if raw[:4] != key_id:
            continue
        lines += 1
        if len(raw) != 4 + 8 + 64:
            print(json.dumps({"error": f"a {len(raw)}-byte cosignature"}))
            return 1
        timestamp = int.from_bytes(raw[4:12], "big")
        message = b"cosignature/v1\n" + b"time " + str(timestamp).encode() + b"\n" + body
        try:
            key.verify(raw[12:], message)
        except InvalidSignature:
            print(json.dumps({"lines": lines, "verified": verified, "error": "a signature does not verify"}))
            return 1
        verified.append(timestamp)
    print(json.dumps({"lines": lines, "verified": verified}))
    return 0 if verified and len(verified) == lines else 1


if __name__ == "__main__":
    sys.exit(main())
