// Interop suite: checks a running crieur against Fedify, an independent and
// strict ActivityPub implementation. The suite plays a remote server: it
// serves its own actors (with RSA keys) and inboxes on loopback, builds and
// signs its activities with Fedify, and parses and verifies everything crieur
// sends or serves with Fedify's own vocabulary classes and signature code.
//
// Environment (run.sh sets it):
//   INTEROP_BASE_URL  crieur's base URL, e.g. http://127.0.0.1:8123
//   INTEROP_HANDLE    crieur's bot handle (default "reports")
//   INTEROP_POSTS     crieur's posts folder: the suite drops a new article there
//   INTEROP_VERBOSE   "1" prints every request crieur makes to the suite
//
// Output: one line per check, "ok - …" or "not ok - …: reason", then
// "N passed, M failed". Exit code 1 when M > 0.

import http from "node:http";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";

import {
  Accept,
  Activity,
  Create,
  CryptographicKey,
  Endpoints,
  Follow,
  Like,
  Mention,
  Note,
  Object as APObject,
  OrderedCollection,
  OrderedCollectionPage,
  Person,
  PUBLIC_COLLECTION,
  Undo,
  Update,
  isActor,
} from "@fedify/fedify/vocab";
import {
  doesActorOwnKey,
  fetchKey,
  generateCryptoKeyPair,
  signRequest,
  verifyRequestDetailed,
} from "@fedify/fedify/sig";
import { getDocumentLoader, preloadedContexts } from "@fedify/fedify";
import { lookupWebFinger } from "@fedify/webfinger";

// ---------------------------------------------------------------------------
// Limits. Every wait is bounded so the suite ends well under five minutes
// even when crieur never answers.

/** One HTTP request to crieur. */
const FETCH_TIMEOUT_MS = 10_000;
/** From our Follow to crieur's Accept in our inbox (crieur queues it). */
const ACCEPT_WAIT_MS = 30_000;
/** From dropping or editing a file to the Create/Update in our inbox
 * (folder watcher debounce + publisher + delivery queue). */
const PUBLISH_WAIT_MS = 45_000;
/** For the followers count to reach the expected value. */
const COUNT_WAIT_MS = 15_000;
/** For the outbox to settle after crieur's first reconcile at startup. */
const OUTBOX_SETTLE_MS = 20_000;
/** How long we keep listening for a (wrong) Accept after refused Follows. */
const NEGATIVE_SETTLE_MS = 4_000;
/** Poll interval while waiting. */
const POLL_MS = 250;
/** Most outbox pages we walk (guards against a `next` loop). */
const MAX_PAGES = 50;
/** Watchdog for the whole suite. */
const SUITE_DEADLINE_MS = 200_000;
/** Largest inbox body we accept from crieur. */
const MAX_INBOX_BODY = 1 << 20;

const AP_ACCEPT = "application/activity+json, application/ld+json";
const BROWSER_ACCEPT =
  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

// ---------------------------------------------------------------------------
// Configuration

const BASE = (process.env.INTEROP_BASE_URL ?? "").replace(/\/+$/, "");
const HANDLE = process.env.INTEROP_HANDLE || "reports";
const POSTS_DIR = process.env.INTEROP_POSTS ?? "";
const VERBOSE = process.env.INTEROP_VERBOSE === "1";
/** crieur's binary and data folder, to ask the running server what it kept
 * (crieur status over its admin socket); unset against the selftest fake. */
const CRIEUR_BIN = process.env.INTEROP_CRIEUR_BIN ?? "";
const CRIEUR_DATA = process.env.INTEROP_DATA ?? "";
if (BASE === "") {
  console.error("suite: INTEROP_BASE_URL is required (run interop/run.sh)");
  process.exit(2);
}
const crieurOrigin = new URL(BASE).origin;
const crieurHost = new URL(BASE).host;
/** The ids the brief fixes; used as fallbacks when a document fails to parse. */
const expectedActorId = `${BASE}/@${HANDLE}`;

// ---------------------------------------------------------------------------
// Reporting

let passed = 0;
let failed = 0;

function report(ok, name, reason) {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}: ${oneLine(reason)}`);
  }
}

function note(msg) {
  console.log(`# ${oneLine(msg)}`);
}

function oneLine(s) {
  return String(s).replace(/\s+/g, " ").trim().slice(0, 600);
}

/** CheckError carries a reason meant for the report line. */
class CheckError extends Error {}

function fail(reason) {
  throw new CheckError(reason);
}

function must(cond, reason) {
  if (!cond) fail(reason);
}

/** Runs one check; fn returns nothing (pass) or throws (fail). */
async function check(name, fn) {
  try {
    await fn();
    report(true, name);
  } catch (e) {
    report(false, name, describe(e));
  }
}

function describe(e) {
  if (e instanceof CheckError) return e.message;
  if (e?.name === "TimeoutError") return `timed out (${e.message})`;
  let msg = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
  if (e?.cause) msg += ` (cause: ${e.cause.message ?? e.cause})`;
  return msg;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a non-undefined value or the wait ends. */
async function waitFor(what, ms, fn) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= end) {
      fail(`${what}: nothing after ${ms / 1000}s` + (last ? ` (last error: ${describe(last)})` : ""));
    }
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------
// Fedify's loaders, limited to loopback. Fedify refuses private addresses by
// default; the suite allows them but only for crieur's and its own origin, and
// JSON-LD contexts only from Fedify's preloaded set (the machine has no
// network: a context Fedify would fetch from the Web is reported, not hung on).

let suiteOrigin = ""; // set once our server listens
const fedifyLoader = getDocumentLoader({ allowPrivateAddress: true });

function withTimeout(options) {
  const t = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  return { ...options, signal: options?.signal ? AbortSignal.any([options.signal, t]) : t };
}

async function documentLoader(url, options) {
  const u = new URL(url);
  if (u.href in preloadedContexts) return fedifyLoader(u.href, options);
  if (u.origin !== crieurOrigin && u.origin !== suiteOrigin) {
    throw new Error(`suite refuses to load ${url}: neither crieur (${crieurOrigin}) nor the suite`);
  }
  return fedifyLoader(url, withTimeout(options));
}

async function contextLoader(url, options) {
  const u = new URL(url);
  if (u.href in preloadedContexts) return fedifyLoader(u.href, options);
  throw new Error(
    `JSON-LD context ${url} is not one Fedify preloads; Fedify would fetch it from the Web`,
  );
}

const loaders = { documentLoader, contextLoader };

/** Loads a document the way Fedify does (its Accept header, its parsing). */
async function load(url) {
  const { document } = await documentLoader(url);
  return document;
}

/** A plain GET to crieur, to look at status and headers. */
async function rawGet(url, accept) {
  const res = await fetch(url, {
    headers: { Accept: accept },
    redirect: "manual",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

/** Expanded JSON-LD, key-sorted: two documents that mean the same compare equal. */
async function expanded(obj) {
  return canonical(await obj.toJsonLd({ format: "expand", contextLoader }));
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

/** Names the expanded properties that differ between a and b. */
function diffKeys(a, b) {
  const x = Array.isArray(a) ? a[0] ?? {} : a;
  const y = Array.isArray(b) ? b[0] ?? {} : b;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  return [...keys].filter((k) => !isDeepStrictEqual(x[k], y[k])).map(shortIri);
}

function shortIri(k) {
  return k.replace("https://www.w3.org/ns/activitystreams#", "as:")
    .replace("https://w3id.org/security#", "sec:")
    .replace("http://joinmastodon.org/ns#", "toot:");
}

function pathOf(url) {
  try {
    const u = new URL(url);
    return u.origin === crieurOrigin ? u.pathname + u.search : u.href;
  } catch {
    return String(url);
  }
}

// ---------------------------------------------------------------------------
// The suite's own server: actors with keys, inboxes, a log of what arrives.

/** Each local actor: its id, key id, inbox and key pair. */
const actors = {};
/** Every POST crieur made to one of our inboxes, with Fedify's verdict. */
const received = [];
/** Every GET crieur made of our actors (informational). */
const fetchesOfUs = [];

function actorUrls(name) {
  const id = `${suiteOrigin}/users/${name}`;
  return { id, keyId: `${id}#main-key`, inbox: `${id}/inbox` };
}

async function makeActor(name) {
  const keys = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
  const u = actorUrls(name);
  const person = new Person({
    id: new URL(u.id),
    preferredUsername: name,
    name: `Interop ${name}`,
    inbox: new URL(u.inbox),
    outbox: new URL(`${u.id}/outbox`),
    followers: new URL(`${u.id}/followers`),
    following: new URL(`${u.id}/following`),
    endpoints: new Endpoints({ sharedInbox: new URL(`${suiteOrigin}/inbox`) }),
    publicKey: new CryptographicKey({
      id: new URL(u.keyId),
      owner: new URL(u.id),
      publicKey: keys.publicKey,
    }),
  });
  const json = JSON.stringify(await person.toJsonLd({ contextLoader }));
  return { ...u, name, keys, person, json };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_INBOX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Rebuilds what crieur sent as a Fetch Request, for Fedify's verifier. */
function toRequest(req, body) {
  const url = new URL(req.url, `http://${req.headers.host ?? suiteOrigin.slice(7)}`);
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  return new Request(url, {
    method: req.method,
    headers,
    body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
  });
}

/** Verifies and parses one delivery with Fedify; never throws. */
async function inspectDelivery(entry, request) {
  try {
    const v = await verifyRequestDetailed(request, loaders);
    if (v.verified) {
      entry.keyId = v.key.id?.href;
      entry.key = v.key;
    } else {
      entry.verifyError = `Fedify's verifyRequest refused the signature (${v.reason.type}` +
        (v.reason.keyId ? `, keyId ${v.reason.keyId.href}` : "") +
        (v.reason.result?.status ? `, key fetch HTTP ${v.reason.result.status}` : "") +
        (v.reason.result?.error ? `, key fetch ${v.reason.result.error.message}` : "") + ")";
    }
  } catch (e) {
    entry.verifyError = `verifyRequest threw ${describe(e)}`;
  }
  try {
    entry.json = JSON.parse(entry.body);
  } catch (e) {
    entry.parseError = `body is not JSON: ${e.message}`;
    return;
  }
  try {
    entry.activity = await Activity.fromJsonLd(entry.json, loaders);
    entry.type = entry.activity.constructor.name;
  } catch (e) {
    entry.parseError = `Fedify's Activity.fromJsonLd refused it: ${describe(e)}`;
    return;
  }
  if (entry.key && entry.activity) {
    try {
      entry.ownerOk = await doesActorOwnKey(entry.activity, entry.key, loaders);
    } catch (e) {
      entry.ownerError = describe(e);
    }
  }
}

async function handle(req, res) {
  const url = new URL(req.url, suiteOrigin);
  if (req.method === "GET") {
    const m = url.pathname.match(/^\/users\/([a-z]+)$/);
    const a = m && actors[m[1]];
    if (VERBOSE) note(`crieur GET ${url.pathname} signed=${req.headers.signature != null}`);
    if (a) {
      // Servers in authorized-fetch mode (and GoToSocial) refuse unsigned
      // GETs; record whether crieur signs its fetches and whether Fedify agrees.
      const g = { path: url.pathname, signed: req.headers.signature != null, verified: null };
      fetchesOfUs.push(g);
      if (g.signed) {
        verifyRequestDetailed(toRequest(req, null), loaders).then(
          (v) => { g.verified = v.verified; g.reason = v.verified ? "" : v.reason.type; },
          (e) => { g.verified = false; g.reason = describe(e); },
        );
      }
      res.writeHead(200, { "Content-Type": "application/activity+json" });
      res.end(a.json);
      return;
    }
    if (/^\/users\/[a-z]+\/(outbox|followers|following)$/.test(url.pathname)) {
      res.writeHead(200, { "Content-Type": "application/activity+json" });
      res.end(JSON.stringify({
        "@context": "https://www.w3.org/ns/activitystreams",
        id: url.href,
        type: "OrderedCollection",
        totalItems: 0,
        orderedItems: [],
      }));
      return;
    }
    res.writeHead(404).end();
    return;
  }
  if (req.method === "POST") {
    const m = url.pathname.match(/^\/(?:users\/([a-z]+)\/)?inbox$/);
    if (!m || (m[1] && !actors[m[1]])) {
      res.writeHead(404).end();
      return;
    }
    let body;
    try {
      body = await readBody(req);
    } catch {
      res.writeHead(413).end();
      return;
    }
    const entry = {
      at: Date.now(),
      inbox: m[1] ?? "shared",
      path: url.pathname,
      contentType: req.headers["content-type"],
      signature: req.headers.signature,
      body: body.toString("utf8"),
      done: false,
    };
    received.push(entry);
    const request = toRequest(req, body);
    // Answer first, like Mastodon's 202: crieur must not wait on our key fetch.
    res.writeHead(202).end();
    await inspectDelivery(entry, request);
    entry.done = true;
    if (VERBOSE) {
      note(`crieur POST ${url.pathname} ${entry.type ?? "?"} verified=${entry.keyId != null}` +
        (entry.verifyError ? ` ${entry.verifyError}` : ""));
    }
    return;
  }
  res.writeHead(405).end();
}

async function startServer() {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      note(`suite server error: ${describe(e)}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  suiteOrigin = `http://127.0.0.1:${server.address().port}`;
  return server;
}

/** Deliveries crieur made that match pred, once Fedify has looked at them. */
function deliveries(pred) {
  return received.filter((e) => e.done && pred(e));
}

// ---------------------------------------------------------------------------
// Sending: Fedify builds and signs; the variants break one thing each.

function newId(actor) {
  return new URL(`${actor.id}/activities/${randomBytes(8).toString("hex")}`);
}

/**
 * POSTs an activity to crieur.
 * sign: "fedify" (default) | "none"; signer: actor whose key signs (default: the
 * activity's actor); keyId: override of the keyId (default: the signer's);
 * date: a Date header set before signing; tamper: a function changing the
 * body after signing.
 */
async function post(inbox, activity, opts = {}) {
  const json = await activity.toJsonLd({ contextLoader });
  const body = JSON.stringify(json);
  const headers = new Headers({
    "Content-Type": "application/activity+json",
    Accept: "application/activity+json",
  });
  if (opts.date) headers.set("Date", opts.date);
  let req = new Request(inbox, { method: "POST", headers, body });
  if (opts.sign !== "none") {
    const signer = opts.signer;
    req = await signRequest(req, signer.keys.privateKey, new URL(opts.keyId ?? signer.keyId));
  }
  let sendBody = body;
  if (opts.tamper) sendBody = opts.tamper(body);
  const res = await fetch(req.url, {
    method: "POST",
    headers: req.headers,
    body: sendBody,
    redirect: "manual",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, text: text.slice(0, 200), json };
}

// ---------------------------------------------------------------------------
// Reading crieur's collections.

async function followersCount(followersUrl) {
  const col = await OrderedCollection.fromJsonLd(await load(followersUrl), loaders);
  must(col.totalItems != null, "followers collection has no totalItems");
  return col.totalItems;
}

async function waitCount(followersUrl, want) {
  let last;
  await waitFor(`followers totalItems to become ${want}`, COUNT_WAIT_MS, async () => {
    last = await followersCount(followersUrl);
    return last === want ? true : undefined;
  }).catch((e) => fail(`${e.message}; it is ${last}`));
}

// ---------------------------------------------------------------------------
// The checks.

async function main() {
  const server = await startServer();
  const watchdog = setTimeout(() => {
    report(false, "suite finished in time", `still running after ${SUITE_DEADLINE_MS / 1000}s`);
    finish(server);
  }, SUITE_DEADLINE_MS);
  watchdog.unref();

  for (const name of ["tester", "victim", "other"]) actors[name] = await makeActor(name);
  const tester = actors.tester;
  note(`crieur at ${BASE}, suite actors at ${suiteOrigin}/users/{tester,victim,other}`);

  const ctx = {
    actor: null, // Fedify actor object
    actorId: expectedActorId,
    inbox: `${expectedActorId}/inbox`,
    sharedInbox: null,
    followers: `${expectedActorId}/followers`,
    outbox: `${expectedActorId}/outbox`,
    notes: [], // Note ids found in the outbox
  };

  // 1. WebFinger ------------------------------------------------------------
  const acct = `acct:${HANDLE}@${crieurHost}`;
  await check(`webfinger: ${acct} resolves to the actor`, async () => {
    // Fedify always asks https for acct: lookups; crieur here is plain http on
    // loopback, so route exactly that one origin to http for this call.
    const realFetch = globalThis.fetch;
    const httpsOrigin = `https://${crieurHost}`;
    globalThis.fetch = (input, init) => {
      const u = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (u.startsWith(`${httpsOrigin}/`)) {
        const rerouted = `http://${u.slice("https://".length)}`;
        return realFetch(rerouted, { ...init, signal: init?.signal ?? AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      }
      return realFetch(input, init);
    };
    let jrd;
    try {
      jrd = await lookupWebFinger(acct, { allowPrivateAddress: true });
    } finally {
      globalThis.fetch = realFetch;
    }
    must(jrd != null, "Fedify's lookupWebFinger found nothing (non-2xx, or not JSON)");
    const self = (jrd.links ?? []).find((l) =>
      l.rel === "self" &&
      (l.type === "application/activity+json" || /^application\/ld\+json/.test(l.type ?? ""))
    );
    must(self?.href, `no rel=self link with an ActivityPub type in ${JSON.stringify(jrd.links)}`);
    must(self.href === expectedActorId, `self href is ${self.href}, expected ${expectedActorId}`);
    // The round trip Mastodon does: the actor behind the link names the same account.
    const actor = await APObject.fromJsonLd(await load(self.href), loaders);
    must(isActor(actor), `rel=self ${self.href} is a ${actor.constructor.name}, not an actor`);
    must(actor.id?.href === self.href, `actor id ${actor.id?.href} != webfinger href ${self.href}`);
    must(actor.preferredUsername === HANDLE,
      `actor preferredUsername is ${JSON.stringify(actor.preferredUsername)}, expected ${HANDLE}`);
  });

  // 2. Actor, key, outbox, Notes --------------------------------------------
  await check("actor: served as application/activity+json and parses as a Fedify actor whose id is its URL", async () => {
    const r = await rawGet(expectedActorId, AP_ACCEPT);
    must(r.status === 200, `GET ${pathOf(expectedActorId)} with Accept ${AP_ACCEPT}: HTTP ${r.status}`);
    const ct = r.headers.get("content-type") ?? "";
    must(/^application\/activity\+json\b/.test(ct) || /^application\/ld\+json\b/.test(ct),
      `Content-Type is ${ct}`);
    const json = JSON.parse(r.text);
    // Later checks use what the raw document says even if Fedify refuses it.
    ctx.inbox = typeof json.inbox === "string" ? json.inbox : ctx.inbox;
    ctx.followers = typeof json.followers === "string" ? json.followers : ctx.followers;
    ctx.outbox = typeof json.outbox === "string" ? json.outbox : ctx.outbox;
    ctx.sharedInbox = json.endpoints?.sharedInbox ?? null;
    const actor = await APObject.fromJsonLd(json, loaders);
    must(isActor(actor), `Fedify parsed a ${actor.constructor.name}, not an actor type`);
    must(actor.id?.href === expectedActorId, `id is ${actor.id?.href}, fetched ${expectedActorId}`);
    must(actor.inboxId != null, "Fedify finds no inbox");
    must(actor.followersId != null && actor.outboxId != null, "Fedify finds no followers/outbox");
    ctx.actor = actor;
    ctx.inbox = actor.inboxId.href;
    ctx.followers = actor.followersId.href;
    ctx.outbox = actor.outboxId.href;
    ctx.sharedInbox = actor.endpoints?.sharedInbox?.href ?? null;
    // Dereferencing the id again gives the same object.
    const again = await APObject.fromJsonLd(await load(actor.id.href), loaders);
    const [a, b] = [await expanded(actor), await expanded(again)];
    must(isDeepStrictEqual(a, b), `a second GET of the id differs in ${diffKeys(a, b).join(", ")}`);
    note(`actor type ${actor.constructor.name}, inbox ${pathOf(ctx.inbox)}, shared inbox ${ctx.sharedInbox ? pathOf(ctx.sharedInbox) : "none"}`);
  });

  await check("actor: publicKey is an RSA key owned by the actor, fetchable by its keyId", async () => {
    must(ctx.actor, "actor did not parse");
    const keys = [];
    for await (const k of ctx.actor.getPublicKeys(loaders)) keys.push(k);
    must(keys.length === 1, `actor has ${keys.length} publicKey entries, expected exactly 1`);
    const k = keys[0];
    must(k.id?.href === `${ctx.actor.id.href}#main-key`,
      `publicKey.id is ${k.id?.href}, expected ${ctx.actor.id.href}#main-key`);
    must(k.ownerId?.href === ctx.actor.id.href, `publicKey.owner is ${k.ownerId?.href}, expected ${ctx.actor.id.href}`);
    must(k.publicKey?.algorithm?.name === "RSASSA-PKCS1-v1_5",
      `Fedify read the key as ${k.publicKey?.algorithm?.name ?? "nothing"}`);
    // What a verifier does with a keyId: fetch it and find the key in the actor.
    const { key } = await fetchKey(k.id, CryptographicKey, loaders);
    must(key != null, `Fedify's fetchKey(${k.id.href}) found no key`);
    must(key.ownerId?.href === ctx.actor.id.href, "key fetched by keyId has another owner");
  });

  await check("outbox: parses as an OrderedCollection whose pages hold all its items", async () => {
    // crieur publishes the seed posts at startup; let the outbox settle.
    let total;
    let stableSince = 0;
    await waitFor("outbox totalItems to settle above 0", OUTBOX_SETTLE_MS, async () => {
      const col = await OrderedCollection.fromJsonLd(await load(ctx.outbox), loaders);
      const t = col.totalItems;
      if (t !== total) {
        total = t;
        stableSince = Date.now();
        return undefined;
      }
      return t > 0 && Date.now() - stableSince >= 2000 ? true : undefined;
    });
    const col = await OrderedCollection.fromJsonLd(await load(ctx.outbox), loaders);
    must(col.id?.href === ctx.outbox, `outbox id ${col.id?.href} != ${ctx.outbox}`);
    must(col.firstId != null, "outbox has no `first` page");
    const items = [];
    let pageUrl = col.firstId.href;
    const seen = new Set();
    while (pageUrl) {
      must(!seen.has(pageUrl), `page loop at ${pathOf(pageUrl)}`);
      must(seen.size < MAX_PAGES, `more than ${MAX_PAGES} pages`);
      seen.add(pageUrl);
      const page = await OrderedCollectionPage.fromJsonLd(await load(pageUrl), loaders);
      must(page.id?.href === pageUrl, `page id ${page.id?.href} != its URL ${pageUrl}`);
      must(page.partOfId?.href === ctx.outbox, `page ${pathOf(pageUrl)} partOf is ${page.partOfId?.href}`);
      for await (const it of page.getItems(loaders)) items.push(it);
      pageUrl = page.nextId?.href;
    }
    must(items.length === col.totalItems,
      `totalItems is ${col.totalItems} but the pages hold ${items.length} items`);
    ctx.outboxItems = items;
    note(`outbox: ${items.length} items over ${seen.size} page(s)`);
  });

  const items = ctx.outboxItems ?? [];
  await check("outbox: every item is a Create{Note} by the actor and dereferences to the same activity", async () => {
    must(items.length > 0, "no outbox items to check");
    const problems = [];
    for (const it of items) {
      if (!(it instanceof Create)) {
        problems.push(`${it.id?.href ?? "?"} is ${it.constructor.name}`);
        continue;
      }
      if (it.actorId?.href !== ctx.actorId) problems.push(`${pathOf(it.id)} actor is ${it.actorId?.href}`);
      if (it.objectId == null) problems.push(`${pathOf(it.id)} has no object`);
      else if (!ctx.notes.includes(it.objectId.href)) ctx.notes.push(it.objectId.href);
      if (it.id == null) {
        problems.push("a Create without id");
        continue;
      }
      try {
        const again = await APObject.fromJsonLd(await load(it.id.href), loaders);
        const [a, b] = [await expanded(it), await expanded(again)];
        if (!isDeepStrictEqual(a, b)) problems.push(`${pathOf(it.id)} differs when dereferenced in ${diffKeys(a, b).join(", ")}`);
      } catch (e) {
        problems.push(`${pathOf(it.id)}: ${describe(e)}`);
      }
    }
    must(problems.length === 0, problems.slice(0, 5).join("; ") + (problems.length > 5 ? `; and ${problems.length - 5} more` : ""));
  });

  for (const it of items.filter((i) => i instanceof Create)) {
    const id = it.objectId?.href ?? "?";
    await check(`note ${pathOf(id)}: parses as a Note, public, by the actor, dereferences to the same Note`, async () => {
      const embedded = await it.getObject(loaders);
      must(embedded instanceof Note, `the Create's object is a ${embedded?.constructor.name}`);
      must(embedded.attributionId?.href === ctx.actorId, `attributedTo is ${embedded.attributionId?.href}`);
      must(embedded.toIds.some((u) => u.href === PUBLIC_COLLECTION.href),
        `to ${JSON.stringify(embedded.toIds.map((u) => u.href))} lacks ${PUBLIC_COLLECTION.href}`);
      must(new URL(id).origin === crieurOrigin, `Note id is not on crieur's origin`);
      must(embedded.content != null, "Note has no content");
      const fetched = await Note.fromJsonLd(await load(id), loaders);
      must(fetched.id?.href === id, `GET ${pathOf(id)} gives id ${fetched.id?.href}`);
      const [a, b] = [await expanded(embedded), await expanded(fetched)];
      must(isDeepStrictEqual(a, b), `embedded and dereferenced Note differ in ${diffKeys(a, b).join(", ")}`);
    });
  }

  await check("followers: parses as an OrderedCollection with totalItems", async () => {
    ctx.followersBefore = await followersCount(ctx.followers);
    note(`followers before the Follow: ${ctx.followersBefore}`);
  });

  // 3. HTML fallback ---------------------------------------------------------
  for (const [what, url] of [["actor", ctx.actorId], ["note", ctx.notes[0]]]) {
    await check(`html: the ${what} URL answers a browser with text/html and Vary: Accept`, async () => {
      must(url, `no ${what} URL to fetch`);
      const r = await rawGet(url, BROWSER_ACCEPT);
      must(r.status === 200, `GET ${pathOf(url)} with a browser Accept: HTTP ${r.status}`);
      const ct = r.headers.get("content-type") ?? "";
      must(/^text\/html\b/.test(ct), `Content-Type is ${ct}`);
      must(/<html[\s>]/i.test(r.text), "body has no <html> element");
      const vary = (r.headers.get("vary") ?? "").toLowerCase().split(/\s*,\s*/);
      must(vary.includes("accept"), `Vary is ${JSON.stringify(r.headers.get("vary"))}`);
    });
  }

  // 4. Follow → Accept --------------------------------------------------------
  const follow = new Follow({
    id: newId(tester),
    actor: new URL(tester.id),
    object: new URL(ctx.actorId),
  });
  const sentAt = Date.now();
  await check("follow: a Follow signed by Fedify gets a 2xx", async () => {
    const r = await post(ctx.inbox, follow, { signer: tester });
    must(r.status >= 200 && r.status < 300, `POST ${pathOf(ctx.inbox)}: HTTP ${r.status} ${r.text}`);
  });

  let accept;
  await check("follow: an Accept arrives, signed, and Fedify's verifyRequest accepts crieur's signature", async () => {
    accept = await waitFor("an Accept in the suite's inboxes", ACCEPT_WAIT_MS, () =>
      deliveries((e) => e.at >= sentAt && e.inbox !== "victim" && (e.type === "Accept" || e.json?.type === "Accept"))[0]);
    note(`Accept arrived at ${accept.path} after ${((accept.at - sentAt) / 1000).toFixed(1)}s`);
    must(accept.signature, "the Accept has no Signature header");
    must(!accept.verifyError, accept.verifyError);
    must(!accept.parseError, accept.parseError);
    must(accept.keyId === `${ctx.actorId}#main-key`, `signed with keyId ${accept.keyId}`);
    must(accept.activity.actorId?.href === ctx.actorId, `Accept actor is ${accept.activity.actorId?.href}`);
    must(accept.ownerOk === true, `Fedify's doesActorOwnKey says the key does not belong to the Accept's actor${accept.ownerError ? `: ${accept.ownerError}` : ""}`);
    must(accept.activity.id != null, "the Accept has no id (GoToSocial drops it)");
  });

  await check("follow: the Accept's object is our Follow", async () => {
    must(accept?.activity, "no parsed Accept");
    must(accept.activity.objectId?.href === follow.id.href,
      `Accept object id is ${accept.activity.objectId?.href}, our Follow is ${follow.id.href}`);
    const obj = await accept.activity.getObject({ ...loaders, crossOrigin: "trust" });
    if (obj != null && !(obj instanceof URL)) {
      must(obj instanceof Follow, `embedded object is a ${obj.constructor.name}`);
      must(obj.actorId?.href === tester.id, `embedded Follow actor is ${obj.actorId?.href}`);
    }
  });

  await check("follow: followers totalItems goes up by one", async () => {
    must(ctx.followersBefore != null, "no followers count before the Follow");
    await waitCount(ctx.followers, ctx.followersBefore + 1);
  });

  // 5. Publish: new file → Create, edit → Update ------------------------------
  const slug = `interop-${randomBytes(4).toString("hex")}`;
  const marker1 = `marker-${randomBytes(6).toString("hex")}`;
  const marker2 = `marker-${randomBytes(6).toString("hex")}`;
  const file = POSTS_DIR ? join(POSTS_DIR, `${slug}.en.md`) : "";
  let created;
  const dropAt = Date.now();
  await check("publish: a new article arrives as a signed Create{Note} that Fedify verifies", async () => {
    must(POSTS_DIR, "INTEROP_POSTS is not set");
    await writeFile(file, article(slug, "Interop check", marker1));
    created = await waitFor("a Create carrying the new article", PUBLISH_WAIT_MS, () =>
      deliveries((e) => e.at >= dropAt && e.inbox !== "victim" && e.json?.type === "Create" &&
        JSON.stringify(e.json).includes(marker1))[0]);
    note(`Create arrived at ${created.path} after ${((created.at - dropAt) / 1000).toFixed(1)}s`);
    must(!created.verifyError, created.verifyError);
    must(!created.parseError, created.parseError);
    must(created.keyId === `${ctx.actorId}#main-key`, `signed with keyId ${created.keyId}`);
    must(created.ownerOk === true, "Fedify's doesActorOwnKey refused the key for the Create's actor");
    must(created.activity instanceof Create, `parsed as ${created.type}`);
  });

  let noteId;
  await check("publish: the new Note parses, is public and dereferences by id", async () => {
    must(created?.activity, "no parsed Create");
    const obj = await created.activity.getObject(loaders);
    must(obj instanceof Note, `the Create's object is a ${obj?.constructor.name}`);
    noteId = obj.id?.href;
    must(noteId, "the Note has no id");
    note(`new Note id ${pathOf(noteId)}`);
    must(obj.attributionId?.href === ctx.actorId, `attributedTo is ${obj.attributionId?.href}`);
    must(obj.toIds.some((u) => u.href === PUBLIC_COLLECTION.href), "Note is not addressed to Public");
    must(String(obj.content ?? "").includes(marker1), "Note content lacks the article's text");
    const fetched = await Note.fromJsonLd(await load(noteId), loaders);
    must(fetched.id?.href === noteId, `GET ${pathOf(noteId)} gives id ${fetched.id?.href}`);
    must(String(fetched.content ?? "").includes(marker1), "dereferenced Note lacks the article's text");
  });

  const editAt = Date.now();
  await check("publish: an edit arrives as a signed Update of the same Note id", async () => {
    must(created, "no Create to edit after");
    await writeFile(file, article(slug, "Interop check", `${marker2} (edited)`));
    const upd = await waitFor("an Update carrying the edited article", PUBLISH_WAIT_MS, () =>
      deliveries((e) => e.at >= editAt && e.inbox !== "victim" && e.json?.type === "Update" &&
        JSON.stringify(e.json).includes(marker2))[0]);
    note(`Update arrived at ${upd.path} after ${((upd.at - editAt) / 1000).toFixed(1)}s`);
    must(!upd.verifyError, upd.verifyError);
    must(!upd.parseError, upd.parseError);
    must(upd.ownerOk === true, "Fedify's doesActorOwnKey refused the key for the Update's actor");
    must(upd.activity instanceof Update, `parsed as ${upd.type}`);
    const obj = await upd.activity.getObject(loaders);
    must(obj instanceof Note, `the Update's object is a ${obj?.constructor.name}`);
    must(obj.id?.href === noteId, `Update's Note id ${obj.id?.href} != created ${noteId}`);
    must(obj.updated != null, "the updated Note has no `updated`");
  });

  const pinAt = Date.now();
  await check("profile: pinning the article sends a signed Update of the actor, whose featured collection lists the Note", async () => {
    must(noteId, "no Note to pin");
    await writeFile(file, article(slug, "Interop check", `${marker2} (edited)`, ["pinned: true"]));
    const upd = await waitFor("an Update of the actor", PUBLISH_WAIT_MS, () =>
      deliveries((e) => e.at >= pinAt && e.inbox !== "victim" && e.json?.type === "Update" &&
        e.json?.object?.id === ctx.actorId)[0]);
    note(`Update of the actor arrived at ${upd.path} after ${((upd.at - pinAt) / 1000).toFixed(1)}s`);
    must(!upd.verifyError, upd.verifyError);
    must(!upd.parseError, upd.parseError);
    must(upd.ownerOk === true, "Fedify's doesActorOwnKey refused the key for the Update's actor");
    must(upd.activity instanceof Update, `parsed as ${upd.type}`);
    const actor = await upd.activity.getObject(loaders);
    must(isActor(actor), `the Update's object is a ${actor?.constructor.name}`);
    must(actor.id?.href === ctx.actorId, `the Update's object is ${actor.id?.href}`);
    const featured = await actor.getFeatured(loaders);
    must(featured, "the updated actor has no featured collection");
    const ids = [];
    for await (const it of featured.getItems(loaders)) ids.push(it.id?.href);
    must(ids.includes(noteId), `featured lists ${ids.join(", ") || "nothing"}, not ${noteId}`);
  });

  // Interactions ------------------------------------------------------------
  // A reply and a like of the new article, built and signed by Fedify, are
  // accepted; crieur status (the running server, over its admin socket)
  // then counts them for the article, and the Note's replies and likes
  // collections (read with Fedify's own parser) and the article's page show
  // them, as a remote server and a reader would see them.
  const talkAt = Date.now();
  let replyOk = false;
  let likeOk = false;
  await check("talk: a public reply to the article, signed by Fedify, gets a 2xx", async () => {
    must(noteId, "no Note to reply to");
    const reply = new Note({
      id: new URL(`${tester.id}/notes/${randomBytes(8).toString("hex")}`),
      attribution: new URL(tester.id),
      replyTarget: new URL(noteId),
      content: `<p>A reply from the interop suite, ${marker1}-reply.</p>`,
      to: PUBLIC_COLLECTION,
      ccs: [new URL(`${tester.id}/followers`), new URL(ctx.actorId)],
      tags: [new Mention({ href: new URL(ctx.actorId), name: `@${HANDLE}@${crieurHost}` })],
    });
    const create = new Create({
      id: newId(tester), actor: new URL(tester.id), object: reply,
      to: PUBLIC_COLLECTION, ccs: [new URL(`${tester.id}/followers`), new URL(ctx.actorId)],
    });
    const r = await post(ctx.sharedInbox ?? ctx.inbox, create, { signer: tester });
    must(r.status >= 200 && r.status < 300, `POST: HTTP ${r.status} ${r.text}`);
    replyOk = true;
  });
  await check("talk: a Like of the article, signed by Fedify, gets a 2xx", async () => {
    must(noteId, "no Note to like");
    const like = new Like({ id: newId(tester), actor: new URL(tester.id), object: new URL(noteId) });
    const r = await post(ctx.inbox, like, { signer: tester });
    must(r.status >= 200 && r.status < 300, `POST: HTTP ${r.status} ${r.text}`);
    likeOk = true;
  });
  if (CRIEUR_BIN && CRIEUR_DATA) {
    await check("talk: crieur kept the reply and the like (crieur status counts them for the article)", async () => {
      must(replyOk && likeOk, "the reply or the like was not accepted");
      let last = "never asked";
      await waitFor("crieur status to count 1 reply and 1 like", COUNT_WAIT_MS, async () => {
        const counts = await crieurCounts(`${slug}/en`);
        last = JSON.stringify(counts);
        return counts.replies === 1 && counts.likes === 1 ? true : undefined;
      }).catch((e) => fail(`${e.message}; crieur status says ${last}`));
      note(`crieur status ${slug}/en: ${last}, ${((Date.now() - talkAt) / 1000).toFixed(1)}s after the reply was sent`);
    });
    await check("talk: the Note's replies and likes collections, read by Fedify, and the article's page show them", async () => {
      must(replyOk && likeOk, "the reply or the like was not accepted");
      const note = await Note.fromJsonLd(await load(noteId), loaders);
      const replies = await note.getReplies(loaders);
      const likes = await note.getLikes(loaders);
      must(replies && replies.totalItems === 1, `replies totalItems ${replies?.totalItems}`);
      must(likes && likes.totalItems === 1, `likes totalItems ${likes?.totalItems}`);
      const page = await rawGet(noteId, "text/html");
      must(page.status === 200 && page.text.includes(`${marker1}-reply`), `the page (HTTP ${page.status}) does not show the reply`);
    });
  } else {
    note("talk: INTEROP_CRIEUR_BIN/INTEROP_DATA unset (selftest): what crieur kept is not checked");
  }

  if (!accept) {
    const late = deliveries((e) => e.at >= sentAt && e.inbox !== "victim" && e.json?.type === "Accept")[0];
    note(late
      ? `the Accept did arrive, ${((late.at - sentAt) / 1000).toFixed(1)}s after the Follow (verified: ${late.keyId != null}), ` +
        "i.e. only when something else (the new article) set the delivery queue going"
      : "no Accept arrived at all, even after the publishing checks");
  }

  // Undo{Follow} -------------------------------------------------------------
  await check("undo: Undo{Follow} gets a 2xx and the followers count goes back down", async () => {
    must(ctx.followersBefore != null, "no followers count before the Follow");
    const undo = new Undo({ id: newId(tester), actor: new URL(tester.id), object: follow });
    const inbox = ctx.sharedInbox ?? ctx.inbox;
    const r = await post(inbox, undo, { signer: tester });
    must(r.status >= 200 && r.status < 300, `POST ${pathOf(inbox)}: HTTP ${r.status} ${r.text}`);
    await waitCount(ctx.followers, ctx.followersBefore);
  });

  // 6. Refused Follows --------------------------------------------------------
  const victim = actors.victim;
  const other = actors.other;
  let baseline;
  try {
    baseline = await followersCount(ctx.followers);
  } catch (e) {
    note(`cannot read followers count before the negative checks: ${describe(e)}`);
  }
  const negStart = Date.now();
  const followOf = () => new Follow({ id: newId(victim), actor: new URL(victim.id), object: new URL(ctx.actorId) });
  const staleDate = new Date(Date.now() - 2 * 3600 * 1000).toUTCString();
  const negatives = [
    ["an unsigned Follow", { sign: "none" }],
    ["a Follow signed by another actor's key", { signer: other }],
    ["a Follow whose signature was made with a key the actor does not publish", { signer: other, keyId: victim.keyId }],
    ["a Follow whose body was changed after signing", {
      signer: victim,
      tamper: (b) => b.replace(/"id":"([^"]+)"/, (_m, id) => `"id":"${id}-tampered"`),
    }],
    [`a Follow signed with a Date two hours old (${staleDate})`, { signer: victim, date: staleDate }],
  ];
  for (const [what, opts] of negatives) {
    await check(`refuse: ${what} gets a 4xx and adds no follower`, async () => {
      must(baseline != null, "no followers count to compare with");
      const f = followOf();
      const r = await post(ctx.inbox, f, opts);
      if (opts.tamper) must(r.json.id === f.id.href, "suite bug: tamper changed nothing");
      const problems = [];
      if (r.status < 400 || r.status >= 500) problems.push(`POST ${pathOf(ctx.inbox)}: HTTP ${r.status} ${r.text}`);
      const n = await followersCount(ctx.followers);
      if (n !== baseline) problems.push(`followers totalItems is ${n}, was ${baseline}`);
      must(problems.length === 0, problems.join("; "));
    });
  }
  await check("refuse: no Accept is sent for any refused Follow", async () => {
    await sleep(NEGATIVE_SETTLE_MS);
    const wrong = received.filter((e) => e.at >= negStart && JSON.stringify(e.json ?? e.body).includes(victim.id));
    must(wrong.length === 0, `crieur sent ${wrong.map((e) => e.json?.type ?? "?").join(", ")} about ${victim.id}`);
    if (baseline != null) {
      const n = await followersCount(ctx.followers);
      must(n === baseline, `followers totalItems is ${n}, was ${baseline}`);
    }
  });

  finish(server);
}

/** A new article in crieur's posts format (posts/parse.go): the language
 * comes from the file name ("<slug>.en.md"), title and date are required. */
function article(slug, title, text, extra = []) {
  const date = new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  return [
    "---",
    `title: "${title}"`,
    `slug: ${slug}`,
    `date: ${date}`,
    "tags: [interop]",
    ...extra,
    "---",
    "",
    `This article was dropped by the interop suite. ${text}`,
    "",
  ].join("\n");
}

/** An article's interaction counts, from `crieur status SLUG/LANG`: the
 * five numbers before the last three (the deliveries). */
function crieurCounts(key) {
  return new Promise((resolve, reject) => {
    execFile(CRIEUR_BIN, ["status", "-data", CRIEUR_DATA, key], { timeout: FETCH_TIMEOUT_MS },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`crieur status: ${err.message} ${oneLine(String(stderr)).slice(0, 200)}`));
        const line = String(stdout).split("\n").find((l) => l.split(/\s+/)[0] === key);
        if (!line) return reject(new Error(`crieur status has no line for ${key}`));
        const f = line.trim().split(/\s+/);
        const [replies, likes, boosts, quotes, mentions] = f.slice(-8, -3).map(Number);
        resolve({ replies, likes, boosts, quotes, mentions });
      });
  });
}

function finish(server) {
  const signed = fetchesOfUs.filter((g) => g.signed);
  const verified = signed.filter((g) => g.verified === true);
  const refused = signed.filter((g) => g.verified === false).map((g) => g.reason);
  note(`crieur fetched the suite's actors ${fetchesOfUs.length} time(s): ${signed.length} signed, ` +
    `${verified.length} verified by Fedify` + (refused.length ? ` (refused: ${[...new Set(refused)].join(", ")})` : ""));
  console.log(`${passed} passed, ${failed} failed`);
  server.closeAllConnections?.();
  server.close();
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((e) => {
  report(false, "suite ran to the end", describe(e));
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
});
