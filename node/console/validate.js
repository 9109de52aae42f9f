// Client-side checks of the search forms, mirroring the ledger's rules (ledger/src/ids.rs), so a
// typo is named before any request: each check returns null or { key, params } for i18n.
// The node checks again; these only give the reader a faster, clearer message.

const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const PATENT_WEIGHTS = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];

/** GB 32100-2015 unified social credit code: returns { value } (canonical) or { error }. */
export function uscc(input) {
  const s = input.trim().toUpperCase();
  if (s === '') return { error: { key: 'err.required' } };
  if (/\s/.test(s)) return { error: { key: 'err.whitespace' } };
  if (s.length !== 18) return { error: { key: 'err.uscc.length', params: { got: s.length } } };
  for (let i = 0; i < 18; i++) {
    if (!USCC_CHARSET.includes(s[i])) return { error: { key: 'err.uscc.char', params: { ch: s[i], pos: i + 1 } } };
  }
  for (let i = 2; i < 8; i++) {
    if (!/[0-9]/.test(s[i])) return { error: { key: 'err.uscc.division', params: { ch: s[i], pos: i + 1 } } };
  }
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += USCC_CHARSET.indexOf(s[i]) * USCC_WEIGHTS[i];
  const expected = USCC_CHARSET[(31 - (sum % 31)) % 31];
  if (s[17] !== expected) return { error: { key: 'err.uscc.check', params: { found: s[17], expected } } };
  return { value: s };
}

/** CN patent application number (12 digits + check, ZC 0006-2003): { value: "CN<12 digits>.<check>" } or { error }. */
export function patent(input) {
  let s = input.trim();
  if (s === '') return { error: { key: 'err.required' } };
  if (/\s/.test(s)) return { error: { key: 'err.whitespace' } };
  const prefix = /^[A-Za-z]*/.exec(s)[0];
  if (prefix && prefix.toUpperCase() !== 'CN') return { error: { key: 'err.patent.prefix', params: { prefix } } };
  s = s.slice(prefix.length);
  const dots = s.split('.').length - 1;
  if (dots > 1) return { error: { key: 'err.patent.dots' } };
  let body, check;
  if (dots === 1) [body, check] = s.split('.');
  else { body = s.slice(0, -1); check = s.slice(-1); }
  const bad = /[^0-9]/.exec(body);
  if (bad) return { error: { key: 'err.patent.char', params: { ch: bad[0], pos: prefix.length + bad.index + 1 } } };
  if (body.length === 8) return { error: { key: 'err.patent.legacy' } };
  if (body.length !== 12) return { error: { key: 'err.patent.digits', params: { got: body.length } } };
  if (check.length !== 1 || !/^[0-9Xx]$/.test(check)) return { error: { key: 'err.patent.checkchar' } };
  const year = +body.slice(0, 4);
  if (year < 2003 || year > 2100) return { error: { key: 'err.patent.year', params: { year } } };
  if (!'12389'.includes(body[4])) return { error: { key: 'err.patent.type', params: { ch: body[4] } } };
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += +body[i] * PATENT_WEIGHTS[i];
  const expected = '0123456789X'[sum % 11];
  if (check.toUpperCase() !== expected) return { error: { key: 'err.patent.check', params: { found: check, expected } } };
  return { value: `CN${body}.${expected}` };
}

/** Attestation id: 64 hex digits (SHA-256 of the attestation body). */
export function attestationId(input) {
  const s = input.trim().toLowerCase();
  if (s === '') return { error: { key: 'err.required' } };
  if (s.length !== 64) return { error: { key: 'err.id.length', params: { got: s.length } } };
  const bad = /[^0-9a-f]/.exec(s);
  if (bad) return { error: { key: 'err.id.char', params: { ch: bad[0], pos: bad.index + 1 } } };
  return { value: s };
}
