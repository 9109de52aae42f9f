// Sign-in: the one place that holds a member's delegated access key and signs requests.
//
// The reader pastes an access-key file (`credence keys access` writes it: `# comment`,
// `keyid <grant id>`, then the Ed25519 seed in hex; encrypted files must be opened with the
// CLI first) and picks the purpose of their reads. Every request then carries RFC 9421
// `Signature-Input` and `Signature` over "@method" "@path" "@query" with created, expires,
// nonce, keyid and alg="ed25519", exactly the profile the node checks (node/src/httpsig.rs,
// docs/ACCESS.md). Reads of an enterprise's facts get `purpose=` added, so they are served
// under the enterprise's consent and logged on the ledger like the CLI's.
//
// The key file's text is kept in this tab's sessionStorage (gone when the tab closes) so a
// reload stays signed in; the page's CSP lets only its own scripts run. The CryptoKey made
// from it is not extractable.

const STORE = 'credence.access';
/** Seconds a signature is valid; the node accepts at most 60 (docs/ACCESS.md). */
const LIFETIME_S = 30;
/** DER prefix of a PKCS#8 Ed25519 private key, before its 32-byte seed (RFC 8410). */
const PKCS8_ED25519 = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
export const PURPOSES = ['loan-application', 'post-loan-monitoring', 'guarantee-review', 'risk-pool-claim', 'supervision'];

let current = null; // { keyId, key: CryptoKey, purpose }

function hexBytes(hex) {
  if (!/^[0-9a-f]+$/.test(hex) || hex.length % 2) return null;
  return Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));
}

/** Parses an access-key file's text; throws an Error naming the rule broken. */
export function parseKeyFile(text) {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const id = lines.length === 2 && /^keyid [0-9a-f]{64}$/.test(lines[0]) ? lines[0].slice(6) : null;
  if (!id) throw new Error('access-key file: expected a "keyid <64 hex digits>" line and a key line');
  const seed = hexBytes(lines[1]);
  if (!seed || seed.length !== 32) {
    throw new Error('access-key file: the key line must be 64 hex digits (open an encrypted file with the CLI first)');
  }
  return { keyId: id, seed };
}

/** Signs in with an access-key file's text for reads made for `purpose`. */
export async function signIn(text, purpose) {
  if (!PURPOSES.includes(purpose)) throw new Error(`purpose: one of ${PURPOSES.join(', ')}`);
  const { keyId, seed } = parseKeyFile(text);
  const der = new Uint8Array([...PKCS8_ED25519, ...seed]);
  const key = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
  current = { keyId, key, purpose };
  sessionStorage.setItem(STORE, JSON.stringify({ text, purpose }));
}

export function signOut() {
  current = null;
  sessionStorage.removeItem(STORE);
}

/** Restores this tab's session after a reload. */
export async function restore() {
  const saved = sessionStorage.getItem(STORE);
  if (!saved || current) return;
  try {
    const { text, purpose } = JSON.parse(saved);
    await signIn(text, purpose);
  } catch {
    signOut();
  }
}

/** The current session: who is signed in and how requests are authorised. */
export function session() {
  return current ? { signedIn: true, keyId: current.keyId, purpose: current.purpose } : { signedIn: false, keyId: null };
}

/** Routes whose reads are of one enterprise's facts: they are made for the session's purpose. */
const RESTRICTED = [
  /^\/v1\/enterprises\/[^/]+\/attestations$/, /^\/v1\/attestations\/[0-9a-f]{64}$/, /^\/v1\/attestations\/[0-9a-f]{64}\/openings$/,
];

function b64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/**
 * Returns the request to send for `request` (a same-origin GET `Request`): signed per
 * RFC 9421 when signed in, else unchanged.
 * @param {Request} request
 * @returns {Promise<Request>}
 */
export async function signRequest(request) {
  await restore();
  if (!current) return request;
  const url = new URL(request.url);
  if (RESTRICTED.some((re) => re.test(url.pathname)) && !url.searchParams.has('purpose')) {
    url.searchParams.set('purpose', current.purpose);
  }
  const nonce = b64(crypto.getRandomValues(new Uint8Array(12))).replace(/[^A-Za-z0-9]/g, '');
  const created = Math.floor(Date.now() / 1000);
  const params =
    `("@method" "@path" "@query");created=${created};expires=${created + LIFETIME_S}` +
    `;nonce="${nonce}";keyid="${current.keyId}";alg="ed25519"`;
  const base =
    `"@method": ${request.method}\n"@path": ${url.pathname}\n"@query": ?${url.search.replace(/^\?/, '')}\n` +
    `"@signature-params": ${params}`;
  const signature = await crypto.subtle.sign('Ed25519', current.key, new TextEncoder().encode(base));
  const headers = new Headers(request.headers);
  headers.set('Signature-Input', `sig1=${params}`);
  headers.set('Signature', `sig1=:${b64(signature)}:`);
  return new Request(url, { method: request.method, headers });
}
