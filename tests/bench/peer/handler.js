// The peer's function: the benchmark's accounts collection kept in memory
// (a Map per process, or per worker thread in serverless-offline's default
// mode), seeded with the items the other servers answer (BENCH_ITEMS: a JSON
// list of {etag, item}; BENCH_PUT_ITEMS: how many put-NNNN items). Validation and conditional writes as apifactory does them,
// in their simplest form.
'use strict';
const crypto = require('crypto');

const items = new Map();
for (const { etag, item } of JSON.parse(process.env.BENCH_ITEMS)) items.set(item.id, { etag, item });
// The items the PUT phase replaces, put-0000 to put-NNNN (BENCH_PUT_ITEMS of
// them), as on the other servers; made when first asked for, so that a new
// worker thread starts as fast as without them.
const putCount = Number(process.env.BENCH_PUT_ITEMS || 0);
function lookup(id) {
  let found = items.get(id);
  const m = /^put-(\d{4})$/.exec(id);
  if (!found && m && Number(m[1]) < putCount) {
    found = {
      etag: `"${crypto.randomBytes(13).toString('hex').toUpperCase()}"`,
      item: { id, name: 'Bench Put', email: 'put@example.com', company: 'Bench', created: '2026-01-01T00:00:00Z', plan: 'free' },
    };
    items.set(id, found);
  }
  return found;
}

const FIELDS = new Set(['id', 'name', 'email', 'company', 'plan', 'created']);
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

function json(statusCode, body, headers = {}) {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

function problem(statusCode, title, errors = []) {
  return {
    statusCode,
    headers: { 'content-type': 'application/problem+json' },
    body: JSON.stringify({ type: 'about:blank', title, status: statusCode, errors }),
  };
}

function header(event, name) {
  const h = event.headers || {};
  for (const k of Object.keys(h)) if (k.toLowerCase() === name) return h[k];
  return undefined;
}

function newEtag() {
  return `"${crypto.randomBytes(13).toString('hex').toUpperCase()}"`;
}

// The document to store, or a 400.
function validate(body, id) {
  let doc;
  try {
    doc = JSON.parse(body || '');
  } catch {
    return [null, problem(415, 'Unsupported Media Type')];
  }
  const errors = [];
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return [null, problem(400, 'Bad Request', [{ field: '', message: 'must be an object' }])];
  }
  for (const k of Object.keys(doc)) if (!FIELDS.has(k)) errors.push({ field: k, message: 'unknown field' });
  if (typeof doc.name !== 'string' || doc.name.length > 120) errors.push({ field: 'name', message: 'required string' });
  if (typeof doc.email !== 'string' || !EMAIL.test(doc.email)) errors.push({ field: 'email', message: 'must be an email address' });
  if (doc.plan !== undefined && !['free', 'pro', 'enterprise'].includes(doc.plan)) errors.push({ field: 'plan', message: 'not allowed' });
  if (errors.length) return [null, problem(400, 'Bad Request', errors)];
  return [{ ...doc, id, plan: doc.plan || 'free' }, null];
}

module.exports.get = async (event) => {
  const found = lookup(event.pathParameters.id);
  if (!found) return problem(404, 'Not Found');
  return json(200, found.item, { etag: found.etag });
};

module.exports.search = async (event) => {
  const q = event.queryStringParameters || {};
  const limit = Math.min(Number(q.limit || 20), 100);
  const out = [];
  for (const { item } of items.values()) {
    let ok = true;
    for (const [k, v] of Object.entries(q)) {
      if (k !== 'limit' && k !== 'next' && String(item[k]) !== v) { ok = false; break; }
    }
    if (ok) out.push(item);
    if (out.length === limit) break;
  }
  return json(200, { items: out, next: null });
};

module.exports.add = async (event) => {
  const [doc, err] = validate(event.body, undefined);
  if (err) return err;
  const id = doc.id || crypto.randomUUID();
  if (items.has(id)) return problem(409, 'Conflict');
  const item = { ...doc, id, created: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  const etag = newEtag();
  items.set(id, { etag, item });
  return json(201, item, { etag, location: `/prod/accounts/${id}` });
};

module.exports.update = async (event) => {
  const id = event.pathParameters.id;
  const found = lookup(id);
  if (!found) return problem(404, 'Not Found');
  const ifMatch = header(event, 'if-match');
  if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== found.etag) return problem(412, 'Precondition Failed');
  const [doc, err] = validate(event.body, id);
  if (err) return err;
  const item = { ...doc, created: found.item.created };
  const etag = newEtag();
  items.set(id, { etag, item });
  return json(200, item, { etag });
};
