// Records of any kind, rendered generically from what the API returns (kind + fields): known
// kinds and fields get translated labels and typed formatting; a kind or field this console
// has never seen is still shown, under its API name, so new record kinds appear unchanged.
import { t, has } from './i18n.js';
import * as fmt from './format.js';

/** A DOM element: h('p', { class: 'x' }, 'text', child, …). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** The translated name of a record kind, or the API's own name for a kind unknown here. */
export function kindLabel(kind) {
  return has(`kind.${kind}`) ? t(`kind.${kind}`) : kind;
}

/** The translated label of a field, or its API name. */
export function fieldLabel(name) {
  return has(`field.${name}`) ? t(`field.${name}`) : name;
}

const USCC = /^[0-9A-HJ-NPQRTUWXY]{18}$/;
const ID = /^[0-9a-f]{64}$/;
const LINK_RECORD = new Set(['target', 'pledge', 'superseded_by', 'id']);
const LINK_ENTERPRISE = new Set(['enterprise', 'owner', 'pledgor', 'borrower']);

/** One field's value as a DOM node. */
export function value(name, v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (typeof v === 'object' && !Array.isArray(v) && typeof v.amount === 'string' && typeof v.currency === 'string') {
    return h('span', { class: 'money' }, fmt.money(v));
  }
  // A confidential amount: only its commitment is on the ledger (never shown as 0).
  if (typeof v === 'object' && !Array.isArray(v) && v.sealed === true) {
    return h('span', { class: 'sealed', title: v.commitment ? `${v.currency} · ${v.commitment}` : '' }, fmt.money(v));
  }
  if (Array.isArray(v)) return h('span', {}, v.flatMap((x, i) => (i ? [', ', value(name, x)] : [value(name, x)])));
  if (typeof v === 'object') return fields(v);
  if (typeof v === 'boolean') return document.createTextNode(fmt.yesNo(v));
  if (typeof v === 'number') {
    if (/_ms$/.test(name)) return document.createTextNode(fmt.datetime(v));
    if (/_months$/.test(name)) return document.createTextNode(t('unit.months', { n: v }));
    return document.createTextNode(fmt.count(v));
  }
  const s = String(v);
  if (name === 'period') return document.createTextNode(fmt.period(s));
  if (name === 'kind') return document.createTextNode(kindLabel(s));
  if ((name === 'status' || name === 'record_status') && has(`status.${s}`)) return document.createTextNode(t(`status.${s}`));
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return document.createTextNode(fmt.date(s));
  if (LINK_RECORD.has(name) && ID.test(s)) return h('a', { href: `#/record/${s}`, class: 'mono' }, short(s));
  if (LINK_ENTERPRISE.has(name) && USCC.test(s)) return h('a', { href: `#/enterprise/${s}`, class: 'mono' }, s);
  if (name === 'patent' && /^CN\d{12}\.[0-9X]$/.test(s)) return h('a', { href: `#/patent/${s}`, class: 'mono' }, s);
  if (ID.test(s)) return h('span', { class: 'mono', title: s }, short(s));
  if (has(`val.${name}.${s}`)) return document.createTextNode(t(`val.${name}.${s}`));
  return document.createTextNode(s);
}

/** A definition list of every field of an object. */
export function fields(obj, skip = []) {
  const dl = h('dl', { class: 'fields' });
  for (const [k, v] of Object.entries(obj)) {
    if (skip.includes(k)) continue;
    dl.append(h('dt', {}, fieldLabel(k)), h('dd', { 'data-field': k }, value(k, v)));
  }
  return dl;
}

export function short(id) {
  return `${id.slice(0, 10)}…${id.slice(-6)}`;
}

/** A status badge: active, revoked, released, pending, or any other word. */
export function statusBadge(s) {
  const word = s || 'pending';
  return h('span', { class: `badge badge-${word}`, 'data-status': word }, has(`status.${word}`) ? t(`status.${word}`) : word);
}

/** A table of records of any kinds: kind, the claim's fields, attester, status, link. */
export function recordTable(items, caption) {
  const table = h('table', { class: 'records' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('col.kind')), h('th', { scope: 'col' }, t('col.details')),
      h('th', { scope: 'col' }, t('col.attester')), h('th', { scope: 'col' }, t('col.status')),
      h('th', { scope: 'col' }, t('col.record')))));
  const body = h('tbody');
  for (const r of items) {
    body.append(h('tr', { 'data-kind': r.claim.kind },
      h('td', {}, kindLabel(r.claim.kind)),
      h('td', {}, fields(r.claim, ['kind', 'evidence'])),
      h('td', {}, r.attester),
      h('td', {}, statusBadge(r.record_status || r.status)),
      h('td', {}, h('a', { href: `#/record/${r.id}`, class: 'mono' }, short(r.id)))));
  }
  table.append(body);
  return table;
}
