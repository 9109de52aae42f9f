// Amounts, dates and periods as a reader of the chosen language expects them.
// Amounts are formatted from the API's decimal string (never through a float).
import { lang, t } from './i18n.js';

const LOCALE = { zh: 'zh-CN', en: 'en-GB' };

/** Groups the integer part of a decimal string by thousands: "1234567.89" -> "1,234,567.89". */
export function groupDecimal(s) {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(String(s));
  if (!m) return String(s);
  const int = m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return m[1] + int + (m[3] || '');
}

/** A MoneyView ({fen, currency, amount}): ¥1,234,567.89 in English, 1,234,567.89 元 in Chinese. */
export function money(m) {
  // A confidential amount (docs/ACCESS.md): only a commitment is on the ledger. Never shown as 0.
  if (m && m.sealed && typeof m.amount !== 'string') return t('amt.confidential');
  if (!m || typeof m.amount !== 'string') return '—';
  const n = groupDecimal(m.amount);
  if (m.currency === 'CNY') return lang() === 'zh' ? `${n} 元` : `¥${n}`;
  return lang() === 'zh' ? `${n} ${m.currency}` : `${m.currency} ${n}`;
}

/** An integer count with grouping. */
export function count(n) {
  return groupDecimal(String(n));
}

/** A calendar date "YYYY-MM-DD" (no time zone: the ledger's dates are civil dates). */
export function date(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  if (!m) return s || '—';
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return new Intl.DateTimeFormat(LOCALE[lang()], { dateStyle: 'medium', timeZone: 'UTC' }).format(d);
}

/** A Unix epoch millisecond timestamp, in the reader's time zone. */
export function datetime(ms) {
  if (typeof ms !== 'number') return '—';
  return new Intl.DateTimeFormat(LOCALE[lang()], { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(ms));
}

/** A month "YYYY-MM": 2025年3月, or Mar 2025. */
export function month(s) {
  const m = /^(\d{4})-(\d{2})$/.exec(s || '');
  if (!m) return s || '—';
  if (lang() === 'zh') return `${m[1]}年${Number(m[2])}月`;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, 1));
  return new Intl.DateTimeFormat(LOCALE.en, { month: 'short', year: 'numeric', timeZone: 'UTC' }).format(d);
}

/** A period "YYYY" or "YYYYQn". */
export function period(s) {
  const m = /^(\d{4})(?:Q([1-4]))?$/.exec(s || '');
  if (!m) return s || '—';
  if (!m[2]) return lang() === 'zh' ? `${m[1]}年` : m[1];
  return lang() === 'zh' ? `${m[1]}年第${m[2]}季度` : `Q${m[2]} ${m[1]}`;
}

/** Bytes as KiB/MiB. */
export function bytes(n) {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A yes/no value in words. */
export function yesNo(b) {
  return b ? t('yes') : t('no');
}
