// Verification in the browser, with the browser's own WebCrypto (SHA-256, Ed25519): a record's
// RFC 9162 inclusion proof against a C2SP checkpoint, and the checkpoint's signatures against
// the validator keys of the genesis. Nothing here trusts the node: the node supplies bytes,
// this module recomputes every hash and checks every signature (docs/AUDITING.md).

const enc = new TextEncoder();

/** Standard padded base64 to bytes; throws on anything else. */
export function b64(s) {
  if (typeof s !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
    throw new Error('not padded standard base64');
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(s) {
  if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error('not lowercase hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** RFC 9162 §2.1.1: leaf hash SHA-256(0x00 ‖ leaf). */
export function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** RFC 9162 §2.1.1: interior node SHA-256(0x01 ‖ left ‖ right). */
function nodeHash(l, r) {
  return sha256(concat(Uint8Array.of(1), l, r));
}

/**
 * RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or an Error. Sizes are BigInt so
 * shifts are exact beyond 2^32.
 */
export async function rootFromInclusionProof(leafIndex, treeSize, leaf, path) {
  let fn = BigInt(leafIndex);
  let sn = BigInt(treeSize) - 1n;
  if (fn > sn) throw new Error(`leaf index ${leafIndex} is not below tree size ${treeSize}`);
  let r = leaf;
  for (const p of path) {
    if (p.length !== 32) throw new Error('a proof hash is not 32 bytes');
    if (sn === 0n) throw new Error('the proof is longer than the tree is deep');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the proof is shorter than the tree is deep');
  return r;
}

/**
 * The genesis file's validators: a reader of the TOML subset `credence` writes (tables,
 * arrays of tables, strings, integers, booleans, arrays of strings, comments).
 */
export function parseGenesis(text) {
  const root = {};
  let cur = root;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    let m;
    if ((m = /^\[\[([A-Za-z0-9_.-]+)\]\]$/.exec(line))) {
      root[m[1]] = root[m[1]] || [];
      cur = {};
      root[m[1]].push(cur);
    } else if ((m = /^\[([A-Za-z0-9_.-]+)\]$/.exec(line))) {
      cur = root[m[1]] = root[m[1]] || {};
    } else if ((m = /^([A-Za-z0-9_-]+)\s*=\s*(.+)$/.exec(line))) {
      cur[m[1]] = tomlValue(m[2].trim(), n + 1);
    } else {
      throw new Error(`genesis line ${n + 1}: not understood`);
    }
  }
  if (typeof root.checkpoint_origin !== 'string') throw new Error('genesis: checkpoint_origin is missing');
  const members = Array.isArray(root.members) ? root.members : [];
  const validators = members
    .filter((m) => m.validator === true)
    .map((m) => {
      if (typeof m.name !== 'string' || typeof m.public_key !== 'string' || !/^[0-9a-f]{64}$/.test(m.public_key)) {
        throw new Error(`genesis: member ${m.name}: public_key is not 64 lowercase hex digits`);
      }
      return { name: m.name, publicKey: unhex(m.public_key), roles: m.roles || [] };
    });
  if (validators.length === 0) throw new Error('genesis: no validators');
  return { chainId: root.chain_id, origin: root.checkpoint_origin, members, validators };
}

function tomlValue(v, line) {
  const noComment = (s) => s.replace(/\s+#.*$/, '');
  if (v.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(v);
    if (!m) throw new Error(`genesis line ${line}: unterminated string`);
    return JSON.parse(`"${m[1]}"`);
  }
  if (v.startsWith('[')) {
    const m = /^\[(.*)\]/.exec(v);
    if (!m) throw new Error(`genesis line ${line}: unterminated array`);
    const items = m[1].trim() === '' ? [] : m[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
    return items.map((s) => tomlValue(s, line));
  }
  const s = noComment(v);
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^[+-]?[0-9_]+$/.test(s)) return Number(s.replace(/_/g, ''));
  throw new Error(`genesis line ${line}: value not understood`);
}

/**
 * A C2SP signed note holding a Credence tlog checkpoint: { text, body, signatures } where body
 * is { origin, treeSize, root, height, round, block } and signatures [{ name, keyId, sig }].
 */
export function parseCheckpoint(note) {
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('no blank line between the note text and its signatures');
  const text = note.slice(0, split + 1);
  const sigText = note.slice(split + 2);
  if (!sigText.endsWith('\n')) throw new Error('the last signature line does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length !== 4) throw new Error(`the note text has ${lines.length} lines; a Credence checkpoint has 4`);
  const [origin, sizeLine, rootLine, ext] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw new Error('tree size: not a decimal without leading zeros');
  const root = b64(rootLine);
  if (root.length !== 32) throw new Error('root hash: not 32 bytes');
  const m = /^credence height=(0|[1-9][0-9]*) round=(0|[1-9][0-9]*) block=([0-9a-f]{64})$/.exec(ext);
  if (!m) throw new Error('extension line: not "credence height=.. round=.. block=.."');
  const signatures = sigText.slice(0, -1).split('\n').map((line, i) => {
    const s = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!s) throw new Error(`signature line ${i + 1}: not "— <name> <base64>"`);
    const raw = b64(s[2]);
    if (raw.length < 5) throw new Error(`signature line ${i + 1}: too short`);
    return { line: i + 1, name: s[1], keyId: raw.slice(0, 4), sig: raw.slice(4) };
  });
  return {
    text,
    body: { origin, treeSize: BigInt(sizeLine), root, height: BigInt(m[1]), round: Number(m[2]), block: m[3] },
    signatures,
  };
}

/** signed-note key ID: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]. */
export async function keyId(name, publicKey) {
  return (await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, 0x01), publicKey))).slice(0, 4);
}

/** Smallest k with 3k > 2n: more than two thirds of n validators. */
export function quorumThreshold(n) {
  return n - Math.ceil(n / 3) + 1;
}

/**
 * Checks a parsed checkpoint against the genesis validators. A line whose name and key ID match
 * a validator must verify (else the whole checkpoint fails, as C2SP and `credence` require);
 * lines of unknown keys are ignored; each validator counts once. Returns
 * { ok, signers: [{ name, keyId, valid }], needed, validators, reason }.
 */
export async function verifyCheckpoint(cp, validators) {
  const needed = quorumThreshold(validators.length);
  const ids = await Promise.all(validators.map((v) => keyId(v.name, v.publicKey)));
  const signed = new Set();
  const lines = [];
  const message = enc.encode(cp.text);
  for (const s of cp.signatures) {
    const i = validators.findIndex((v, k) => v.name === s.name && equal(ids[k], s.keyId));
    if (i < 0) { lines.push({ name: s.name, keyId: hex(s.keyId), valid: null }); continue; }
    let valid = false;
    if (s.sig.length === 64) {
      const key = await crypto.subtle.importKey('raw', validators[i].publicKey, { name: 'Ed25519' }, false, ['verify']);
      valid = await crypto.subtle.verify({ name: 'Ed25519' }, key, s.sig, message);
    }
    lines.push({ name: s.name, keyId: hex(s.keyId), valid });
    if (!valid) {
      return { ok: false, signers: lines, needed, validators: validators.length, reason: { key: 'v.badsig', params: { name: s.name } } };
    }
    signed.add(i);
  }
  if (signed.size < needed) {
    return { ok: false, signers: lines, needed, validators: validators.length, reason: { key: 'v.noquorum', params: { signed: signed.size, needed, n: validators.length } } };
  }
  return { ok: true, signers: lines, needed, validators: validators.length, count: signed.size };
}

/**
 * The whole check of one record, step by step. `fetchers` supplies the node's documents:
 * { attestation(id), checkpoint(), genesis(), proof(id, treeSize) }. Returns
 * { ok, steps: [{ key, ok, detail, params }] }: every step that ran, the first failure last.
 */
export async function verifyRecord(id, fetchers) {
  const steps = [];
  const step = (key, ok, params = {}, detail = '') => { steps.push({ key, ok, params, detail }); return ok; };
  const fail = (key, e, params = {}) => { step(key, false, params, e instanceof Error ? e.message : String(e)); return { ok: false, steps }; };
  let genesis, cp, att, proof;
  try { genesis = parseGenesis(await fetchers.genesis()); } catch (e) { return fail('v.genesis', e); }
  step('v.genesis', true, { n: genesis.validators.length, origin: genesis.origin });
  try { cp = parseCheckpoint(await fetchers.checkpoint()); } catch (e) { return fail('v.checkpoint', e); }
  if (cp.body.origin !== genesis.origin) return fail('v.origin', new Error(`"${cp.body.origin}" ≠ "${genesis.origin}"`));
  step('v.checkpoint', true, { size: cp.body.treeSize.toString(), height: cp.body.height.toString() });
  let quorum;
  try { quorum = await verifyCheckpoint(cp, genesis.validators); } catch (e) { return fail('v.signatures', e); }
  if (!quorum.ok) { step('v.signatures', false, quorum.reason.params, quorum.reason.key); return { ok: false, steps, quorum }; }
  step('v.signatures', true, { signed: quorum.count, needed: quorum.needed, n: quorum.validators });
  let leaf;
  try {
    att = await fetchers.attestation(id);
    leaf = b64(att.attestation);
    if (leaf.length <= 64) throw new Error('the attestation is shorter than its signature');
  } catch (e) { return fail('v.record', e); }
  const body = leaf.slice(0, leaf.length - 64);
  const computedId = hex(await sha256(body));
  if (computedId !== id) return fail('v.id', new Error(`SHA-256(body) = ${computedId}`));
  step('v.id', true);
  if (typeof att.leaf_index !== 'number' || BigInt(att.leaf_index) >= cp.body.treeSize) {
    return fail('v.notyet', new Error(`leaf ${att.leaf_index}, checkpoint size ${cp.body.treeSize}`));
  }
  try {
    proof = await fetchers.proof(id, cp.body.treeSize.toString());
  } catch (e) { return fail('v.proof', e); }
  let root;
  try {
    if (proof.leaf_index !== att.leaf_index || String(proof.tree_size) !== cp.body.treeSize.toString()) {
      throw new Error(`the proof is for leaf ${proof.leaf_index} of ${proof.tree_size}`);
    }
    const lh = await leafHash(leaf);
    root = await rootFromInclusionProof(proof.leaf_index, proof.tree_size, lh, proof.proof.map(b64));
  } catch (e) { return fail('v.proof', e); }
  if (!equal(root, cp.body.root)) return fail('v.root', new Error(`computed ${btoa(String.fromCharCode(...root))}`));
  step('v.root', true, { size: cp.body.treeSize.toString() });
  return { ok: true, steps, quorum, checkpoint: cp, genesis };
}

// ---------------------------------------------------------------------------------------------
// Openings of confidential amounts (docs/encoding.md §13)

/** Domain-separation prefix of every amount commitment: "credence:amount:v1" and a zero byte. */
const COMMITMENT_DOMAIN = enc.encode('credence:amount:v1\0');

/**
 * The commitment to an amount: SHA-256("credence:amount:v1" 00 ‖ len(field) u8 ‖ field ‖
 * salt (32) ‖ currency (3) ‖ fen u64 big-endian), docs/encoding.md §13. `fen` is a BigInt.
 */
export async function amountCommitment(field, salt, currency, fen) {
  const name = enc.encode(field);
  const cur = enc.encode(currency);
  if (name.length < 1 || name.length > 64) throw new Error('field: 1 to 64 bytes');
  if (salt.length !== 32) throw new Error('salt: not 32 bytes');
  if (cur.length !== 3) throw new Error('currency: not 3 bytes');
  if (typeof fen !== 'bigint' || fen < 0n || fen >= 1n << 64n) throw new Error('fen: not a u64');
  const be = new Uint8Array(8);
  new DataView(be.buffer).setBigUint64(0, fen);
  return sha256(concat(COMMITMENT_DOMAIN, Uint8Array.of(name.length), name, salt, cur, be));
}

function indexOf(haystack, needle) {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Checks one opening ({ field, salt (hex), fen, amount }) of record `id` against the record's
 * own bytes `leaf` (the signed attestation, base64-decoded), trusting nothing the node says
 * beside them: the body must hash to `id`, and the body must hold the sealed form of the
 * amount, `01 ‖ currency ‖ commitment` (§13), for the commitment recomputed from the opening.
 * The value checked is the opening's decimal `amount` when given (exact, no floating point).
 * Returns { ok, fen (BigInt), commitment (hex), reason }.
 */
export async function checkOpening(leaf, id, opening, currency) {
  const fail = (reason) => ({ ok: false, reason });
  if (leaf.length <= 64) return fail('the record is shorter than its signature');
  const body = leaf.slice(0, leaf.length - 64);
  if (hex(await sha256(body)) !== id) return fail('the record bytes do not hash to its id');
  let fen, salt;
  try {
    if (typeof opening.amount === 'string') {
      if (!/^(0|[1-9][0-9]*)\.[0-9]{2}$/.test(opening.amount)) throw new Error('amount: not a decimal with two places');
      fen = BigInt(opening.amount.replace('.', ''));
    } else {
      if (!Number.isSafeInteger(opening.fen)) throw new Error('fen: not an exact integer');
      fen = BigInt(opening.fen);
    }
    salt = unhex(String(opening.salt));
  } catch (e) { return fail(e.message); }
  let c;
  try { c = await amountCommitment(String(opening.field), salt, currency, fen); } catch (e) { return fail(e.message); }
  const sealedForm = concat(Uint8Array.of(1), enc.encode(currency), c);
  if (indexOf(body, sealedForm) < 0) return { ok: false, fen, commitment: hex(c), reason: 'the commitment of this opening is not in the record' };
  return { ok: true, fen, commitment: hex(c) };
}
