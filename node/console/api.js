// The node's JSON API as the console reads it: every request is built here, passed through
// signin.signRequest and sent to this origin. Errors keep the API's { code, field, rule }.
import { signRequest } from './signin.js';

/** Largest number of pages read for one listing (1,000 records each). */
export const PAGES_MAX = 20;
/** Records per page asked for (the API's maximum). */
export const PAGE_LIMIT = 1000;

/** An API error: the HTTP status and the node's { code, field, rule, message }. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail && detail.message ? detail.message : `HTTP ${status}`);
    this.status = status;
    this.detail = detail || null;
  }
}

async function send(path) {
  const request = await signRequest(new Request(path, { method: 'GET', headers: { Accept: 'application/json, text/plain' } }));
  const response = await fetch(request);
  if (!response.ok) {
    let detail = null;
    try { detail = (await response.json()).error; } catch { detail = null; }
    throw new ApiError(response.status, detail);
  }
  return response;
}

/** GET a JSON document. */
export async function json(path) {
  return (await send(path)).json();
}

/** GET a text document (checkpoint, genesis, metrics). */
export async function text(path) {
  return (await send(path)).text();
}

/**
 * Every committed attestation of a listing (`/v1/enterprises/{uscc}/attestations`, …), page by
 * page, at most PAGES_MAX pages: returns { items, complete }.
 */
export async function allPages(path) {
  const items = [];
  let after = null;
  for (let page = 0; page < PAGES_MAX; page++) {
    const q = `limit=${PAGE_LIMIT}` + (after === null ? '' : `&after=${after}`);
    const body = await json(`${path}?${q}`);
    items.push(...body.items);
    if (body.next_after === null || body.next_after === undefined) return { items, complete: true };
    after = body.next_after;
  }
  return { items, complete: false };
}
