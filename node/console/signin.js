// Sign-in: the one place that will hold a member's delegated access key and sign requests.
//
// Today the node's API is public and nothing is signed: `signRequest` returns the request as
// it is and `session()` reports public access. When the access-key API lands (RFC 9421 HTTP
// Message Signatures with Ed25519 keys delegated by a member), this module keeps the key
// (a non-extractable WebCrypto CryptoKey) and `signRequest` adds `Signature-Input` and
// `Signature` over the covered components; nothing else in the console changes, because every
// request goes through `api.js`, which calls `signRequest` last.

/** The current session: who is signed in and how requests are authorised. */
export function session() {
  return { signedIn: false, keyId: null };
}

/**
 * Returns the request to send for `request` (a `Request`): today the same request, unsigned.
 * @param {Request} request
 * @returns {Promise<Request>}
 */
export async function signRequest(request) {
  return request;
}
