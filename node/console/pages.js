// The console's pages. Each takes the route's parameters and returns a DOM node to show;
// figures come from the API, proofs are checked by verify.js in this browser.
import * as api from './api.js';
import * as signinState from './signin.js';
import { t, lang } from './i18n.js';
import * as fmt from './format.js';
import * as check from './validate.js';
import { barChart, lineChart, gauge } from './chart.js';
import { verifyRecord, verifyCheckpoint, parseCheckpoint, parseGenesis, keyId, hex, sha256, b64, checkOpening } from './verify.js';
import { h, fields, value, kindLabel, recordTable, statusBadge, short } from './records.js';

const GENESIS_PIN = 'credence.genesis';

function errorBox(e) {
  const d = e && e.detail;
  const text = d ? `${d.field}: ${d.rule}` : (e && e.message) || String(e);
  return h('p', { class: 'error', role: 'alert' }, `${t('error')}: `, text);
}

function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

// ---------------------------------------------------------------------------------------------
// Search

function searchForm(id, label, hint, placeholder, validate, route) {
  const input = h('input', { id: `${id}-input`, name: id, type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder, 'aria-describedby': `${id}-hint ${id}-error` });
  const error = h('p', { id: `${id}-error`, class: 'field-error', role: 'alert' });
  const form = h('form', { class: 'search', id: `${id}-form`, novalidate: true },
    h('label', { for: `${id}-input` }, label),
    h('p', { id: `${id}-hint`, class: 'hint' }, hint),
    h('div', { class: 'row' }, input, h('button', { type: 'submit' }, t('search.go'))),
    error);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const r = validate(input.value);
    if (r.error) {
      error.textContent = t(r.error.key, r.error.params);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    location.hash = `#/${route}/${encodeURIComponent(r.value)}`;
  });
  return form;
}

export function search() {
  return h('div', {},
    h('h1', {}, t('search.title')),
    h('p', { class: 'lead' }, t('search.lead')),
    h('div', { class: 'grid3' },
      searchForm('uscc', t('search.uscc'), t('search.uscc.hint'), '914403001922038216', check.uscc, 'enterprise'),
      searchForm('patent', t('search.patent'), t('search.patent.hint'), 'CN202310123456.6', check.patent, 'patent'),
      searchForm('record', t('search.record'), t('search.record.hint'), '64 hex', check.attestationId, 'record')));
}

// ---------------------------------------------------------------------------------------------
// Money arithmetic in integer fen (exact), from the API's decimal strings.

/** Fen of a money view; 0n for a confidential amount, which callers leave out of sums (sealedIn). */
function fenOf(m) {
  return typeof m.amount === 'string' ? BigInt(m.amount.replace('.', '')) : 0n;
}

/** How many of `views` are confidential and not disclosed (left out of a sum, never counted as 0). */
function sealedIn(views) {
  return views.filter((m) => m && m.sealed && typeof m.amount !== 'string').length;
}

function moneyOf(fen, currency) {
  const neg = fen < 0n;
  const s = (neg ? -fen : fen).toString().padStart(3, '0');
  return { amount: `${neg ? '-' : ''}${s.slice(0, -2)}.${s.slice(-2)}`, currency };
}

/** Yuan as a number, for chart scale only. */
function yuan(fen) {
  return Number(fen) / 100;
}

function compactYuan(v) {
  if (lang() === 'zh') {
    if (v >= 1e8) return `${(v / 1e8).toFixed(v >= 1e9 ? 0 : 1)}亿`;
    if (v >= 1e4) return `${(v / 1e4).toFixed(0)}万`;
    return String(Math.round(v));
  }
  if (v >= 1e9) return `¥${(v / 1e9).toFixed(1)}B`;
  if (v >= 1e6) return `¥${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `¥${(v / 1e3).toFixed(0)}K`;
  return `¥${Math.round(v)}`;
}

// ---------------------------------------------------------------------------------------------
// Enterprise credit profile

/**
 * R&D by year from active rd-spend records of category `total`: a year's figure is its annual
 * record (the latest by leaf index when members disagree, which is flagged), otherwise the sum
 * of its quarters' latest records. Corroboration is the number of distinct attesters.
 */
export function rdByYear(items) {
  const byPeriod = new Map();
  for (const r of items) {
    if (r.claim.kind !== 'rd-spend' || r.record_status !== 'active' || r.claim.category !== 'total') continue;
    const p = r.claim.period;
    if (!byPeriod.has(p)) byPeriod.set(p, []);
    byPeriod.get(p).push(r);
  }
  const years = new Map();
  for (const [p, rs] of byPeriod) {
    rs.sort((a, b) => a.leaf_index - b.leaf_index);
    const latest = rs[rs.length - 1];
    const amounts = new Set(rs.map((r) => r.claim.amount.amount));
    const entry = { period: p, record: latest, attesters: new Set(rs.map((r) => r.attester)).size, disagree: amounts.size > 1, fen: fenOf(latest.claim.amount), currency: latest.claim.amount.currency, sealed: sealedIn([latest.claim.amount]) > 0 };
    const y = p.slice(0, 4);
    if (!years.has(y)) years.set(y, { year: y, annual: null, quarters: [] });
    if (p.length === 4) years.get(y).annual = entry; else years.get(y).quarters.push(entry);
  }
  return [...years.values()].sort((a, b) => a.year.localeCompare(b.year)).map((y) => {
    const parts = y.annual ? [y.annual] : y.quarters;
    const fen = parts.reduce((s, e) => s + e.fen, 0n);
    return {
      year: y.year, fen, currency: parts[0].currency, fromQuarters: !y.annual,
      attesters: Math.max(...parts.map((e) => e.attesters)), disagree: parts.some((e) => e.disagree), parts,
      sealed: parts.filter((e) => e.sealed).length,
    };
  });
}

/** A year's R&D total for people: confidential parts are named, never summed as 0. */
function yearLabel(y) {
  if (y.sealed === y.parts.length) return t('amt.confidential');
  const sum = fmt.money(moneyOf(y.fen, y.currency));
  return y.sealed ? `${sum} + ${y.sealed} ${t('amt.confidential')}` : sum;
}

function rdSection(items) {
  const years = rdByYear(items);
  const all = items.filter((r) => r.claim.kind === 'rd-spend');
  if (all.length === 0) return section(t('rd.title'), h('p', { class: 'muted' }, t('rd.none')));
  const shown = years.filter((y) => y.sealed < y.parts.length);
  const chart = shown.length
    ? barChart(shown.map((y) => ({
      label: fmt.period(y.year), value: yuan(y.fen), valueLabel: yearLabel(y),
      short: compactYuan(yuan(y.fen)), note: y.disagree ? t('rd.disagree') : y.fromQuarters ? t('rd.fromq') : '',
    })), { title: t('rd.chart'), axisLabel: compactYuan })
    : h('p', { class: 'muted' }, t('rd.nototal'));
  const table = h('table', { class: 'rd', id: 'rd-table' },
    h('caption', {}, t('rd.table')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('col.period')), h('th', { scope: 'col' }, t('col.category')),
      h('th', { scope: 'col', class: 'num' }, t('col.amount')), h('th', { scope: 'col' }, t('col.attester')),
      h('th', { scope: 'col' }, t('col.status')), h('th', { scope: 'col' }, t('col.record')))),
    h('tbody', {}, [...all].sort((a, b) => a.claim.period.localeCompare(b.claim.period) || a.leaf_index - b.leaf_index).map((r) =>
      h('tr', { 'data-period': r.claim.period },
        h('td', {}, fmt.period(r.claim.period)), h('td', {}, value('category', r.claim.category)),
        h('td', { class: 'num money' }, fmt.money(r.claim.amount)), h('td', {}, r.attester),
        h('td', {}, statusBadge(r.record_status)), h('td', {}, h('a', { href: `#/record/${r.id}`, class: 'mono' }, short(r.id)))))));
  const corro = h('ul', { class: 'corroboration' }, years.map((y) => h('li', {},
    `${fmt.period(y.year)}: `, yearLabel(y), ' — ',
    t('rd.attesters', { n: y.attesters }), y.fromQuarters ? ` (${t('rd.fromq')})` : '',
    y.disagree ? h('span', { class: 'badge badge-flag' }, t('rd.disagree')) : null)));
  return section(t('rd.title'), h('div', { class: 'chart-box', id: 'rd-chart' }, chart), corro, table);
}

function patentSection(items, today) {
  const patents = new Map();
  const get = (p) => { if (!patents.has(p)) patents.set(p, { valuations: [], pledges: [] }); return patents.get(p); };
  for (const r of items) {
    if (r.claim.kind === 'patent-valuation') get(r.claim.patent).valuations.push(r);
    if (r.claim.kind === 'pledge') get(r.claim.patent).pledges.push(r);
  }
  if (patents.size === 0) return section(t('pat.title'), h('p', { class: 'muted' }, t('pat.none')));
  const rows = [...patents.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([p, d]) => {
    const vals = d.valuations.filter((r) => r.record_status === 'active')
      .sort((a, b) => a.claim.valuation_date.localeCompare(b.claim.valuation_date) || a.leaf_index - b.leaf_index);
    const v = vals[vals.length - 1];
    const active = d.pledges.filter((r) => r.record_status === 'active');
    const secured = active.reduce((s, r) => s + fenOf(r.claim.secured), 0n);
    const expired = v && v.claim.valid_until < today;
    const ltv = v && active.length ? Number((secured * 10000n) / fenOf(v.claim.value)) / 100 : null;
    return h('tr', { 'data-patent': p },
      h('td', {}, h('a', { href: `#/patent/${p}`, class: 'mono' }, p)),
      h('td', { class: 'num money' }, v ? fmt.money(v.claim.value) : '—'),
      h('td', {}, v ? [value('method', v.claim.method), ' · ', fmt.date(v.claim.valuation_date), ' · ', v.attester] : '—',
        expired ? h('span', { class: 'badge badge-flag' }, t('pat.expired')) : null),
      h('td', {}, active.length ? active.map((r) => h('div', {}, fmt.money(r.claim.secured), ' → ', r.claim.pledgee, ' ', statusBadge(r.record_status))) : h('span', { class: 'muted' }, t('pat.unpledged')),
        d.pledges.filter((r) => r.record_status !== 'active').map((r) => h('div', { class: 'muted' }, fmt.money(r.claim.secured), ' → ', r.claim.pledgee, ' ', statusBadge(r.record_status)))),
      h('td', { class: 'num' }, ltv === null ? '—' : `${ltv.toFixed(1)}%`));
  });
  return section(t('pat.title'), h('table', { class: 'patents', id: 'patent-table' },
    h('caption', {}, t('pat.table')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('col.patent')), h('th', { scope: 'col', class: 'num' }, t('col.valuation')),
      h('th', { scope: 'col' }, t('col.appraisal')), h('th', { scope: 'col' }, t('col.pledges')),
      h('th', { scope: 'col', class: 'num' }, t('col.ltv')))),
    h('tbody', {}, rows)));
}

const PROFILE_KINDS = new Set(['rd-spend', 'patent-valuation', 'pledge', 'query']);

/** The enterprise's query history, newest first, like the query section of a credit report. */
function querySection(items) {
  const qs = items.filter((r) => r.claim.kind === 'query').sort((a, b) => b.issued_at_ms - a.issued_at_ms);
  if (qs.length === 0) return section(t('q.title'), h('p', { class: 'muted', id: 'no-queries' }, t('q.none')));
  return section(t('q.title'), h('table', { id: 'query-table' },
    h('caption', {}, t('q.caption', { n: fmt.count(qs.length) })),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('q.when')), h('th', { scope: 'col' }, t('q.reader')), h('th', { scope: 'col' }, t('q.purpose')),
      h('th', { scope: 'col' }, t('q.consent')), h('th', { scope: 'col' }, t('q.node')), h('th', { scope: 'col' }, t('col.record')))),
    h('tbody', {}, ...qs.map((r) => h('tr', { 'data-reader': r.claim.reader },
      h('td', {}, fmt.datetime(r.issued_at_ms)),
      h('td', {}, r.claim.reader),
      h('td', {}, t(`purpose.${r.claim.purpose}`)),
      h('td', { class: 'mono' }, r.claim.consent ? h('a', { href: `#/record/${r.claim.consent}` }, short(r.claim.consent)) : t('q.noconsent')),
      h('td', {}, r.attester),
      h('td', {}, h('a', { href: `#/record/${r.id}` }, short(r.id))))))));
}

export async function enterprise({ id }) {
  const uscc = decodeURIComponent(id);
  const ok = check.uscc(uscc);
  if (ok.error) return h('div', {}, h('h1', {}, t('ent.title')), h('p', { class: 'error', role: 'alert' }, t(ok.error.key, ok.error.params)));
  const { items, complete } = await api.allPages(`/v1/enterprises/${ok.value}/attestations`);
  const today = new Date().toISOString().slice(0, 10);
  const flagged = items.filter((r) => r.record_status && r.record_status !== 'active' && r.record_status !== 'released');
  const other = items.filter((r) => !PROFILE_KINDS.has(r.claim.kind));
  const years = rdByYear(items);
  const last = years[years.length - 1];
  const pledged = items.filter((r) => r.claim.kind === 'pledge' && r.record_status === 'active');
  const securedFen = pledged.reduce((s, r) => s + fenOf(r.claim.secured), 0n);
  const patents = new Set(items.filter((r) => r.claim.patent).map((r) => r.claim.patent));
  const attesters = new Set(items.map((r) => r.attester));
  return h('div', { id: 'profile', 'data-uscc': ok.value },
    h('h1', {}, t('ent.title'), ' ', h('span', { class: 'mono' }, ok.value)),
    complete ? null : h('p', { class: 'warn' }, t('ent.partial', { n: fmt.count(items.length) })),
    items.length === 0 ? h('p', { class: 'muted', id: 'no-records' }, t('ent.none')) : null,
    h('div', { class: 'cards' },
      card(t('sum.records'), fmt.count(items.length), 'sum-records'),
      card(t('sum.rdlast'), last ? `${fmt.period(last.year)}: ${yearLabel(last)}` : '—', 'sum-rd'),
      card(t('sum.patents'), fmt.count(patents.size), 'sum-patents'),
      card(t('sum.secured'), fmt.money(moneyOf(securedFen, 'CNY'))
        + (sealedIn(pledged.map((r) => r.claim.secured)) ? ` + ${sealedIn(pledged.map((r) => r.claim.secured))} ${t('amt.confidential')}` : ''), 'sum-secured'),
      card(t('sum.attesters'), fmt.count(attesters.size), 'sum-attesters')),
    rdSection(items),
    patentSection(items, today),
    section(t('flag.title'), flagged.length ? recordTable(flagged, t('flag.table')) : h('p', { class: 'muted', id: 'no-flags' }, t('flag.none'))),
    other.length ? section(t('other.title'), recordTable(other, t('other.table'))) : null,
    querySection(items));
}

function card(label, text, id) {
  return h('div', { class: 'stat', id }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, text));
}

export async function patent({ id }) {
  const n = check.patent(decodeURIComponent(id));
  if (n.error) return h('div', {}, h('h1', {}, t('patent.title')), h('p', { class: 'error', role: 'alert' }, t(n.error.key, n.error.params)));
  const { items } = await api.allPages(`/v1/patents/${encodeURIComponent(n.value)}/attestations`);
  return h('div', { id: 'patent-page' },
    h('h1', {}, t('patent.title'), ' ', h('span', { class: 'mono' }, n.value)),
    items.length ? recordTable(items, t('patent.table')) : h('p', { class: 'muted' }, t('patent.none')));
}

// ---------------------------------------------------------------------------------------------
// Record and its proof

/** The genesis to check against: the file the reader pinned, else the node's. */
async function genesisText() {
  const pinned = localStorage.getItem(GENESIS_PIN);
  return pinned !== null ? pinned : api.text('/v1/genesis');
}

function verdictPanel(id) {
  const verdict = h('p', { id: 'verdict', class: 'verdict running', 'data-verdict': 'running', role: 'status' }, t('v.running'));
  const steps = h('ol', { class: 'steps', id: 'steps' });
  const source = h('p', { class: 'hint' }, localStorage.getItem(GENESIS_PIN) !== null ? t('v.src.pinned') : t('v.src.node'));
  const run = async () => {
    verdict.className = 'verdict running';
    verdict.dataset.verdict = 'running';
    verdict.textContent = t('v.running');
    steps.replaceChildren();
    let result;
    try {
      result = await verifyRecord(id, {
        genesis: genesisText,
        checkpoint: () => api.text('/v1/checkpoint'),
        attestation: (x) => api.json(`/v1/attestations/${x}`),
        proof: (x, size) => api.json(`/v1/proofs/inclusion/${x}?tree_size=${size}`),
      });
    } catch (e) {
      result = { ok: false, steps: [{ key: 'v.error', ok: false, params: {}, detail: e.message || String(e) }] };
    }
    for (const s of result.steps) {
      steps.append(h('li', { class: s.ok ? 'ok' : 'bad', 'data-step': s.key },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, s.ok ? '✓' : '✗'), ' ',
        t(s.key, s.params), s.ok ? null : h('div', { class: 'detail' }, s.detail && s.detail.startsWith('v.') ? t(s.detail, s.params) : s.detail)));
    }
    verdict.className = result.ok ? 'verdict ok' : 'verdict bad';
    verdict.dataset.verdict = result.ok ? 'verified' : 'failed';
    verdict.textContent = result.ok
      ? t('v.verified', { height: result.checkpoint.body.height.toString(), signed: result.quorum.count, n: result.quorum.validators })
      : t('v.failed');
  };
  const again = h('button', { type: 'button', id: 'verify-again', onclick: run }, t('v.again'));
  queueMicrotask(run);
  return section(t('v.title'), h('p', { class: 'hint' }, t('v.lead')), source, verdict, steps, again);
}

/** The claim's sealed amounts: [[field, AmountView]] (docs/encoding.md §13). */
function sealedFields(claim) {
  return Object.entries(claim).filter(([, v]) => v && typeof v === 'object' && v.sealed === true && typeof v.amount !== 'string');
}

/**
 * Opens the record's sealed amounts for a signed-in reader: asks the node for the openings
 * (`GET /v1/attestations/{id}/openings`, a restricted read under the enterprise's consent,
 * logged on the ledger), checks each against the record's own bytes with WebCrypto
 * (verify.checkOpening), and shows the amount with a verified mark, or why it is not shown.
 * Each sealed field's <dd> gets data-opening: verified, failed, refused or signed-out.
 */
async function openSealed(r, dl) {
  const sealed = sealedFields(r.claim);
  if (sealed.length === 0) return;
  const dds = new Map(sealed.map(([name]) => [name, dl.querySelector(`dd[data-field="${name}"]`)]));
  const note = (dd, state, cls, ...text) => {
    dd.dataset.opening = state;
    dd.append(' ', h('span', { class: `opening ${cls}`, role: state === 'failed' ? 'alert' : null }, ...text));
  };
  if (!signinState.session().signedIn) {
    for (const dd of dds.values()) note(dd, 'signed-out', 'muted', t('op.signin'));
    return;
  }
  let body;
  try {
    body = await api.json(`/v1/attestations/${r.id}/openings`);
  } catch (e) {
    const d = e && e.detail;
    for (const dd of dds.values()) note(dd, 'refused', 'muted', t('op.refused', { reason: d ? `${d.field}: ${d.rule}` : e.message }));
    return;
  }
  let leaf;
  try { leaf = b64(r.attestation); } catch { leaf = new Uint8Array(0); }
  for (const [name, view] of sealed) {
    const dd = dds.get(name);
    const o = (body.openings || []).find((x) => x.field === `${r.claim.kind}.${name}`);
    const result = o ? await checkOpening(leaf, r.id, o, view.currency) : { ok: false, reason: t('op.missing') };
    if (result.ok) {
      dd.replaceChildren(h('span', { class: 'money', 'data-fen': result.fen.toString() }, fmt.money(moneyOf(result.fen, view.currency))));
      note(dd, 'verified', 'ok', '✓ ', t('op.verified'));
    } else {
      note(dd, 'failed', 'bad', '✗ ', t('op.failed', { reason: result.reason }));
    }
  }
}

export async function record({ id }) {
  const ok = check.attestationId(decodeURIComponent(id));
  if (ok.error) return h('div', {}, h('h1', {}, t('rec.title')), h('p', { class: 'error', role: 'alert' }, t(ok.error.key, ok.error.params)));
  const r = await api.json(`/v1/attestations/${ok.value}`);
  const meta = {
    kind: r.claim.kind, attester: r.attester, sequence: r.sequence, issued_at_ms: r.issued_at_ms,
    status: r.status, record_status: r.record_status, height: r.height, leaf_index: r.leaf_index,
  };
  const claim = fields(r.claim, ['kind']);
  if (r.status === 'committed') {
    queueMicrotask(() => openSealed(r, claim).catch((e) => {
      for (const dd of claim.querySelectorAll('dd[data-field]')) {
        if (dd.dataset.opening === undefined && sealedFields(r.claim).some(([n]) => n === dd.dataset.field)) {
          dd.dataset.opening = 'failed';
          dd.append(' ', h('span', { class: 'opening bad', role: 'alert' }, '✗ ', t('op.failed', { reason: e.message || String(e) })));
        }
      }
    }));
  }
  return h('div', { id: 'record', 'data-id': r.id },
    h('h1', {}, t('rec.title'), ': ', kindLabel(r.claim.kind)),
    h('p', { class: 'mono wrap' }, r.id),
    section(t('rec.claim'), claim),
    section(t('rec.meta'), fields(meta)),
    r.status === 'committed' ? verdictPanel(r.id) : section(t('v.title'), h('p', { class: 'muted' }, t('v.pending'))));
}

// ---------------------------------------------------------------------------------------------
// Chain

export async function chain() {
  const [status, note, genesis] = await Promise.all([api.json('/v1/status'), api.text('/v1/checkpoint').catch(() => null), genesisText()]);
  const g = parseGenesis(genesis);
  const ids = await Promise.all(g.validators.map((v) => keyId(v.name, v.publicKey)));
  let cpSection;
  if (note === null) {
    cpSection = section(t('chain.cp'), h('p', { class: 'muted' }, t('chain.nocp')));
  } else {
    const cp = parseCheckpoint(note);
    const q = await verifyCheckpoint(cp, g.validators);
    cpSection = section(t('chain.cp'),
      fields({ origin: cp.body.origin, tree_size: cp.body.treeSize.toString(), height: cp.body.height.toString(), round: cp.body.round, block_hash: cp.body.block }),
      h('p', { id: 'cp-verdict', class: q.ok ? 'verdict ok' : 'verdict bad', 'data-verdict': q.ok ? 'verified' : 'failed' },
        q.ok ? t('chain.cpok', { signed: q.count, needed: q.needed, n: q.validators }) : t(q.reason.key, q.reason.params)),
      h('table', { class: 'cosigners', id: 'cosigners' }, h('caption', {}, t('chain.cosigners')),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('col.name')), h('th', { scope: 'col' }, t('col.keyid')), h('th', { scope: 'col' }, t('col.sig')))),
        h('tbody', {}, q.signers.map((s) => h('tr', {}, h('td', {}, s.name), h('td', { class: 'mono' }, s.keyId),
          h('td', {}, s.valid === null ? t('chain.unknown') : s.valid ? h('span', { class: 'ok' }, '✓ ', t('chain.sigok')) : h('span', { class: 'bad' }, '✗ ', t('chain.sigbad'))))))),
      h('details', {}, h('summary', {}, t('chain.note')), h('pre', { class: 'note' }, note)));
  }
  const pinned = localStorage.getItem(GENESIS_PIN);
  const fingerprint = hex(await sha256(new TextEncoder().encode(genesis))).slice(0, 16);
  const file = h('input', { type: 'file', id: 'genesis-file', accept: '.toml,text/plain' });
  const pinMsg = h('p', { class: 'field-error', role: 'alert' });
  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    const text = await f.text();
    try { parseGenesis(text); } catch (e) { pinMsg.textContent = `${t('chain.pinbad')}: ${e.message}`; return; }
    localStorage.setItem(GENESIS_PIN, text);
    dispatchEvent(new HashChangeEvent('hashchange'));
  });
  const unpin = h('button', { type: 'button', onclick: () => { localStorage.removeItem(GENESIS_PIN); dispatchEvent(new HashChangeEvent('hashchange')); } }, t('chain.unpin'));
  return h('div', { id: 'chain' },
    h('h1', {}, t('chain.title')),
    section(t('chain.status'), fields({ chain_id: status.chain_id, origin: status.origin, height: status.height, tree_size: status.tree_size, tree_root: status.tree_root, block_hash: status.block_hash, time_ms: status.time_ms })),
    cpSection,
    section(t('chain.validators'),
      h('p', { class: 'hint' }, pinned !== null ? t('v.src.pinned') : t('v.src.node'), ' ', t('chain.fingerprint'), ' ', h('span', { class: 'mono' }, fingerprint)),
      h('table', { class: 'validators', id: 'validators' }, h('caption', {}, t('chain.validators.table', { n: g.validators.length, needed: Math.floor((2 * g.validators.length) / 3) + 1 })),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('col.name')), h('th', { scope: 'col' }, t('col.roles')), h('th', { scope: 'col' }, t('col.keyid')), h('th', { scope: 'col' }, t('col.pubkey')))),
        h('tbody', {}, g.validators.map((v, i) => h('tr', {}, h('td', {}, v.name), h('td', {}, v.roles.map((r) => value('role', r)).flatMap((n, j) => (j ? [', ', n] : [n]))), h('td', { class: 'mono' }, hex(ids[i])), h('td', { class: 'mono wrap' }, hex(v.publicKey)))))),
      h('div', { class: 'pin' }, h('label', { for: 'genesis-file' }, t('chain.pin')), file, pinned !== null ? unpin : null, pinMsg)));
}

// ---------------------------------------------------------------------------------------------
// Node operations

/** Prometheus text: unlabelled samples by name (histogram series excluded), and labelled sums. */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || /_bucket$/.test(m[1])) continue;
    out.set(m[1], (out.get(m[1]) || 0) + Number(m[3]));
  }
  return out;
}

const SHOWN_METRICS = [
  'credence_height', 'credence_tree_size', 'credence_peers', 'credence_syncing', 'credence_blocks_committed_total',
  'credence_attestations_committed_total', 'credence_attestations_admitted_total', 'credence_attestations_refused_total',
  'credence_signatures_verified_total', 'credence_signatures_invalid_total', 'credence_mempool_evicted_total',
  'credence_consensus_rejected_total', 'credence_proposals_invalid_total', 'credence_sync_refused_total', 'credence_http_requests_total',
];

export async function ops() {
  const [s, metrics] = await Promise.all([api.json('/v1/status'), api.text('/metrics')]);
  const m = parseMetrics(metrics);
  const lat = m.has('credence_commit_latency_seconds_count') && m.get('credence_commit_latency_seconds_count') > 0
    ? `${((m.get('credence_commit_latency_seconds_sum') / m.get('credence_commit_latency_seconds_count')) * 1000).toFixed(0)} ms` : '—';
  const mp = s.mempool;
  return h('div', { id: 'ops', 'data-refresh': '5000' },
    h('h1', {}, t('ops.title')),
    h('div', { class: 'cards' },
      card(t('ops.peers'), fmt.count(s.peers), 'ops-peers'),
      card(t('ops.sync'), s.syncing ? t('ops.syncing') : t('ops.insync'), 'ops-sync'),
      card(t('ops.height'), fmt.count(s.height), 'ops-height'),
      card(t('ops.role'), s.validator ? t('ops.validator') : t('ops.observer'), 'ops-role'),
      card(t('ops.latency'), lat, 'ops-latency')),
    section(t('ops.mempool'),
      h('div', { class: 'gauge-row' }, h('span', {}, t('ops.mp.records', { n: fmt.count(mp.records), max: fmt.count(mp.records_max) })), gauge(mp.records, mp.records_max, t('ops.mp.records', { n: mp.records, max: mp.records_max }))),
      h('div', { class: 'gauge-row' }, h('span', {}, t('ops.mp.bytes', { n: fmt.bytes(mp.bytes), max: fmt.bytes(mp.bytes_max) })), gauge(mp.bytes, mp.bytes_max, t('ops.mp.bytes', { n: fmt.bytes(mp.bytes), max: fmt.bytes(mp.bytes_max) }))),
      h('p', {}, t('ops.mp.held', { n: fmt.count(mp.held) }))),
    section(t('ops.node'), fields({ member: s.member, validator: s.validator, round: s.round, syncing: s.syncing, time_ms: s.time_ms })),
    section(t('ops.metrics'), h('table', { class: 'metrics', id: 'metrics' }, h('caption', {}, t('ops.metrics.table')),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('col.metric')), h('th', { scope: 'col', class: 'num' }, t('col.value')))),
      h('tbody', {}, SHOWN_METRICS.filter((k) => m.has(k)).map((k) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'num' }, fmt.count(m.get(k)))))))));
}

// ---------------------------------------------------------------------------------------------
// Portfolio (regulators and risk pools)

export async function portfolio() {
  let body;
  try {
    body = await api.json('/v1/portfolio');
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 404) {
      return h('div', { id: 'portfolio' }, h('h1', {}, t('pf.title')), h('p', { class: 'muted', id: 'pf-absent' }, t('pf.absent')));
    }
    throw e;
  }
  return portfolioView(body);
}

/** Basis points as a percentage with two decimals ("1.42%"). */
function bpPercent(bp) {
  return `${(bp / 100).toFixed(2)}%`;
}

/** The LTV bucket labels from the API's bounds: "< 30%", "30–50%", …, "≥ 100%". */
export function ltvLabels(bounds) {
  const pc = (bp) => `${bp / 100}%`;
  return bounds.map((b, i) => (i === 0 ? `< ${pc(b)}` : `${pc(bounds[i - 1])}–${pc(b)}`)).concat([`≥ ${pc(bounds[bounds.length - 1])}`]);
}

function lenderRow(name, f) {
  return h('tr', { 'data-lender': name },
    h('th', { scope: 'row' }, name),
    h('td', { class: 'num' }, fmt.count(f.loans)),
    h('td', { class: 'num money' }, fmt.money(f.outstanding)),
    h('td', { class: 'num money' }, fmt.money(f.bad)),
    h('td', { class: 'num', 'data-bp': f.bad_ratio_bp }, bpPercent(f.bad_ratio_bp)));
}

/**
 * The bad-loan ratio at each month end (`series.overall` of `/v1/portfolio`): a line chart whose
 * points carry the exact ratio, and the same figures as a table for reading and for screen readers.
 */
function seriesSection(series) {
  const months = (series && series.overall) || [];
  if (months.length === 0) return section(t('pf.series'), h('p', { class: 'muted', id: 'pf-series-none' }, t('pf.series.none')));
  const first = months[0], last = months[months.length - 1];
  const peak = months.reduce((a, b) => (b.bad_ratio_bp > a.bad_ratio_bp ? b : a));
  const chart = lineChart(months.map((mf) => ({
    key: mf.month, label: fmt.month(mf.month), value: mf.bad_ratio_bp / 100, attrs: { 'data-bp': mf.bad_ratio_bp },
    valueLabel: `${bpPercent(mf.bad_ratio_bp)} (${fmt.money(mf.bad)} / ${fmt.money(mf.outstanding)})`,
  })), {
    title: t('pf.series.chart'),
    desc: t('pf.series.desc', {
      from: fmt.month(first.month), to: fmt.month(last.month), n: months.length,
      first: bpPercent(first.bad_ratio_bp), last: bpPercent(last.bad_ratio_bp),
      peak: bpPercent(peak.bad_ratio_bp), peakAt: fmt.month(peak.month),
    }),
    axisLabel: (v) => `${Number(v.toFixed(2))}%`,
  });
  const table = h('table', { id: 'pf-series-table' },
    h('caption', {}, t('pf.series.table')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('pf.col.month')), h('th', { scope: 'col', class: 'num' }, t('pf.col.loans')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.outstanding')), h('th', { scope: 'col', class: 'num' }, t('pf.col.bad')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.ratio')))),
    h('tbody', {}, ...months.map((mf) => h('tr', { 'data-month': mf.month },
      h('th', { scope: 'row' }, h('time', { datetime: mf.as_of }, fmt.month(mf.month))),
      h('td', { class: 'num' }, fmt.count(mf.loans)),
      h('td', { class: 'num money' }, fmt.money(mf.outstanding)),
      h('td', { class: 'num money' }, fmt.money(mf.bad)),
      h('td', { class: 'num', 'data-bp': mf.bad_ratio_bp }, bpPercent(mf.bad_ratio_bp))))));
  return section(t('pf.series'),
    h('figure', { id: 'pf-series' }, h('div', { class: 'chart-box' }, chart),
      h('figcaption', { class: 'muted' }, t('pf.series.note'),
        series.months_omitted ? ` ${t('pf.series.omitted', { n: fmt.count(series.months_omitted), max: series.months_max })}` : '')),
    h('details', { class: 'series-table' }, h('summary', {}, t('pf.series.show')), table));
}

/** The regulator's and pools' figures (`/v1/portfolio`), as cards, tables and the LTV chart. */
export function portfolioView(body) {
  const o = body.overall;
  const labels = ltvLabels(body.ltv_bounds_bp);
  const chart = barChart(o.ltv_buckets.map((n, i) => ({ label: labels[i], value: n, valueLabel: t('pf.loans', { n: fmt.count(n) }), short: fmt.count(n) })), {
    title: t('pf.ltv.chart'),
    axisLabel: (v) => fmt.count(v),
  });
  const lenders = h('table', { id: 'pf-lenders' },
    h('caption', {}, t('pf.lenders')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('pf.lender')), h('th', { scope: 'col', class: 'num' }, t('pf.col.loans')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.outstanding')), h('th', { scope: 'col', class: 'num' }, t('pf.col.bad')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.ratio')))),
    h('tbody', {}, ...body.lenders.map((l) => lenderRow(l.lender, l.figures))),
    h('tfoot', {}, lenderRow(t('pf.all'), o)));
  const pools = body.pools.length === 0 ? h('p', { class: 'muted' }, t('pf.nopools')) : h('table', { id: 'pf-pools' },
    h('caption', {}, t('pf.pools')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('col.name')), h('th', { scope: 'col', class: 'num' }, t('pf.col.share')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.enrolled')), h('th', { scope: 'col', class: 'num' }, t('pf.col.exposure')),
      h('th', { scope: 'col', class: 'num' }, t('pf.col.claimed')), h('th', { scope: 'col', class: 'num' }, t('pf.col.paid')))),
    h('tbody', {}, ...body.pools.map((p) => h('tr', { 'data-pool': p.pool },
      h('th', { scope: 'row' }, h('a', { href: `#/record/${p.pool}` }, p.name)),
      h('td', { class: 'num' }, bpPercent(p.pool_bp)),
      h('td', { class: 'num' }, fmt.count(p.enrolled)),
      h('td', { class: 'num money' }, fmt.money(p.exposure)),
      h('td', { class: 'num money' }, fmt.money(p.claimed), ' ', h('span', { class: 'muted' }, t('pf.claims', { n: fmt.count(p.claims.length) }))),
      h('td', { class: 'num money' }, fmt.money(p.paid))))));
  return h('div', { id: 'portfolio', 'data-height': body.height },
    h('h1', {}, t('pf.title')),
    h('p', { class: 'muted' }, t('pf.lead', { height: fmt.count(body.height), records: fmt.count(body.tree_size) })),
    h('div', { class: 'cards' },
      card(t('pf.col.loans'), fmt.count(o.loans), 'pf-loans'),
      card(t('pf.col.outstanding'), fmt.money(o.outstanding), 'pf-outstanding'),
      card(t('pf.col.bad'), fmt.money(o.bad), 'pf-bad'),
      card(t('pf.col.ratio'), bpPercent(o.bad_ratio_bp), 'pf-ratio')),
    seriesSection(body.series),
    section(t('pf.lenders'), lenders),
    section(t('pf.ltv'), h('figure', { id: 'pf-ltv' }, chart, h('figcaption', { class: 'muted' }, t('pf.ltv.note')))),
    section(t('pf.pools'), pools),
    body.other_currency_loans ? h('p', { class: 'warn' }, t('pf.othercur', { n: fmt.count(body.other_currency_loans) })) : null);
}

export { errorBox };

/** Sign-in: paste an access-key file and pick the purpose of the reads (signin.js). */
export async function signin() {
  const s = signinState.session();
  const area = h('textarea', { id: 'key-file', rows: 4, cols: 70, spellcheck: 'false', 'aria-label': t('signin.file') });
  const select = h('select', { id: 'purpose', 'aria-label': t('signin.purpose') },
    ...signinState.PURPOSES.map((p) => h('option', { value: p }, t(`purpose.${p}`))));
  const message = h('p', { id: 'signin-message', role: 'alert' });
  const form = h('form', { id: 'signin-form', novalidate: true },
    h('label', { for: 'key-file' }, t('signin.file')), area,
    h('label', { for: 'purpose' }, t('signin.purpose')), select,
    h('button', { type: 'submit' }, t('signin.go')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    signinState.signIn(area.value, select.value)
      .then(() => { location.hash = '#/'; })
      .catch((e) => { message.textContent = e.message; });
  });
  const out = h('button', { type: 'button', id: 'signout' }, t('signin.out'));
  out.addEventListener('click', () => { signinState.signOut(); location.hash = '#/'; });
  return h('div', {}, h('h1', {}, t('signin.title')), h('p', {}, t('signin.lead')),
    s.signedIn ? h('p', {}, t('session.key', { key: s.keyId }), ' ', out) : form, message);
}
