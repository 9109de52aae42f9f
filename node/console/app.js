// The console's shell: hash routes to pages, the language switch (remembered), the session
// line from signin.js, and the periodic refresh of the node page.
import { t, lang, setLang } from './i18n.js';
import { session, restore } from './signin.js';
import * as pages from './pages.js';
import { h } from './records.js';

const ROUTES = [
  [/^#?\/?$/, pages.search, 'nav.search'],
  [/^#\/enterprise\/([^/]+)$/, pages.enterprise, 'ent.title'],
  [/^#\/patent\/([^/]+)$/, pages.patent, 'patent.title'],
  [/^#\/record\/([^/]+)$/, pages.record, 'rec.title'],
  [/^#\/chain$/, pages.chain, 'nav.chain'],
  [/^#\/ops$/, pages.ops, 'nav.ops'],
  [/^#\/portfolio$/, pages.portfolio, 'nav.portfolio'],
  [/^#\/signin$/, pages.signin, 'signin.title'],
];

let refresh = null;
let generation = 0;

function translateStatic() {
  document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  const s = session();
  const el = document.getElementById('session');
  el.textContent = s.signedIn ? t('session.key', { key: s.keyId }) : t('session.public');
  el.dataset.key = s.signedIn ? s.keyId : '';
  for (const a of document.querySelectorAll('#nav a')) {
    const here = a.getAttribute('href') === (location.hash || '#/') || (a.getAttribute('href') === '#/' && location.hash === '');
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

async function route() {
  await restore();
  const mine = ++generation;
  clearTimeout(refresh);
  translateStatic();
  const main = document.getElementById('main');
  const hash = location.hash || '#/';
  const found = ROUTES.map(([re, page, title]) => [re.exec(hash), page, title]).find(([m]) => m);
  let node;
  if (!found) {
    node = h('div', {}, h('h1', {}, t('notfound')), h('p', {}, h('a', { href: '#/' }, t('nav.search'))));
    document.title = `${t('notfound')} · Credence`;
  } else {
    const [m, page, title] = found;
    document.title = `${t(title)} · Credence`;
    main.setAttribute('aria-busy', 'true');
    try {
      node = await page({ id: m[1] });
    } catch (e) {
      node = h('div', {}, h('h1', {}, t(title)), pages.errorBox(e));
    }
    main.removeAttribute('aria-busy');
  }
  if (mine !== generation) return;
  main.replaceChildren(node);
  // For the first-paint figure (docs/BENCHMARKS.md §Console): the page is in the document, then
  // (after the next animation frame) painted.
  performance.mark('credence:shown', { detail: hash });
  requestAnimationFrame(() => setTimeout(() => performance.mark('credence:painted', { detail: hash }), 0));
  const every = node.dataset && node.dataset.refresh;
  if (every) refresh = setTimeout(() => { if (mine === generation) route(); }, Number(every));
}

addEventListener('hashchange', () => { route().then(() => document.getElementById('main').focus({ preventScroll: true })); });
document.getElementById('lang-switch').addEventListener('click', () => {
  setLang(lang() === 'zh' ? 'en' : 'zh');
  route();
});
route();
