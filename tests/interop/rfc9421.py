"""RFC 9421 interoperability helper: signs and verifies requests with the PyPI library
`http-message-signatures` (an implementation independent of Credence), for
node/tests/httpsig_interop.rs.

  sign   SEED_HEX KEYID METHOD URL [BODY]    -> JSON {signature_input, signature, content_digest}
  verify PUBKEY_HEX METHOD URL SIG_INPUT SIG -> exit 0 if the library verifies the signature
"""
import datetime
import json
import sys
from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms


class Keys(HTTPSignatureKeyResolver):
    def __init__(self, private=None, public=None):
        self.private, self.public = private, public

    def resolve_private_key(self, key_id):
        return self.private

    def resolve_public_key(self, key_id):
        return self.public


class Headers(dict):
    pass


def request(method, url, headers):
    return SimpleNamespace(method=method, url=url, headers=Headers(headers))


def main():
    mode = sys.argv[1]
    if mode == "sign":
        seed, keyid, method, url = sys.argv[2:6]
        body = sys.argv[6].encode() if len(sys.argv) > 6 else None
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        req = request(method, url, {})
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        components = ["@method", "@path", "@query"]
        HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys(private=key)).sign(
            req,
            key_id=keyid,
            created=now,
            expires=now + datetime.timedelta(seconds=30),
            nonce="py-" + now.isoformat(),
            label="sig1",
            covered_component_ids=components,
            body=body,
        )
        print(json.dumps({
            "signature_input": req.headers["Signature-Input"],
            "signature": req.headers["Signature"],
            "content_digest": req.headers.get("Content-Digest"),
        }))
    elif mode == "verify":
        pub, method, url, sig_input, sig = sys.argv[2:7]
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
        req = request(method, url, {"Signature-Input": sig_input, "Signature": sig})
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=Keys(public=key))
        results = verifier.verify(req, require_components=["@method", "@path", "@query"])
        assert len(results) == 1, results
        print("verified")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
