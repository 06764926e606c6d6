// A stand-in for crieur, used only to test the interop suite itself (see
// selftest/run.sh). Its documents are hand-written JSON in the shapes the
// brief's URL table gives, not Fedify output, so the suite's parsing is tested
// against documents Fedify did not make. It uses Fedify only for the
// signatures (verify incoming, sign outgoing).
//
// Usage: node fake-crieur.mjs <port> <posts dir> [bug]
// bug (optional) makes it misbehave one way, to see the suite fail:
//   accept-unsigned | no-vary | accept-unsigned | accept-any-signature | wrong-owner

import http from "node:http";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { signRequest, verifyRequestDetailed } from "@fedify/fedify/sig";
import { exportSpki, getDocumentLoader } from "@fedify/fedify";

const [port, postsDir, bug = ""] = process.argv.slice(2);
const BASE = `http://127.0.0.1:${port}`;
const HANDLE = "reports";
const ACTOR = `${BASE}/@${HANDLE}`;
const KEY_ID = `${ACTOR}#main-key`;
const PUBLIC = "https://www.w3.org/ns/activitystreams#Public";
const CTX = [
  "https://www.w3.org/ns/activitystreams",
  "https://w3id.org/security/v1",
  {
    manuallyApprovesFollowers: "as:manuallyApprovesFollowers", toot: "http://joinmastodon.org/ns#", discoverable: "toot:discoverable",
    featured: { "@id": "toot:featured", "@type": "@id" },
  },
];
const PAGE_SIZE = 3;

const loader = getDocumentLoader({ allowPrivateAddress: true });
const keys = await crypto.subtle.generateKey(
  { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
  true,
  ["sign", "verify"],
);
const pem = await exportSpki(keys.publicKey);

const followers = new Map(); // actor id -> inbox
const activities = new Map(); // id -> activity JSON
const outbox = []; // Create activity ids, newest first
const notes = new Map(); // note id -> note JSON
const files = new Map(); // file -> {mtime, noteId}
const pinned = new Set(); // note ids

function actorDoc() {
  return {
    "@context": CTX,
    id: ACTOR,
    type: "Service",
    preferredUsername: HANDLE,
    name: "Reports",
    summary: "<p>Fake crieur</p>",
    url: ACTOR,
    inbox: `${ACTOR}/inbox`,
    outbox: `${ACTOR}/outbox`,
    followers: `${ACTOR}/followers`,
    following: `${ACTOR}/following`,
    endpoints: { sharedInbox: `${BASE}/inbox` },
    featured: `${ACTOR}/featured`,
    manuallyApprovesFollowers: false,
    discoverable: true,
    publicKey: { id: KEY_ID, owner: bug === "wrong-owner" ? `${BASE}/@someone` : ACTOR, publicKeyPem: pem },
  };
}

function collection(id, total, page, items) {
  if (page == null) {
    return { "@context": "https://www.w3.org/ns/activitystreams", id, type: "OrderedCollection", totalItems: total, first: `${id}?page=1` };
  }
  const slice = items.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const doc = { "@context": CTX, id: `${id}?page=${page}`, type: "OrderedCollectionPage", partOf: id, totalItems: total, orderedItems: slice };
  if (page * PAGE_SIZE < items.length) doc.next = `${id}?page=${page + 1}`;
  return doc;
}

function newActivity(type, object, extra = {}) {
  const id = `${BASE}/activities/${randomBytes(16).toString("hex")}`;
  const act = { "@context": CTX, id, type, actor: ACTOR, object, ...extra };
  activities.set(id, act);
  return act;
}

async function deliver(inbox, act) {
  const body = JSON.stringify(act);
  let req = new Request(inbox, { method: "POST", headers: { "Content-Type": "application/activity+json" }, body });
  if (bug !== "accept-unsigned") req = await signRequest(req, keys.privateKey, new URL(KEY_ID));
  try {
    const res = await fetch(req, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
  } catch (e) {
    console.error(`fake: deliver to ${inbox}: ${e.message}`);
  }
}

function parsePost(text) {
  const m = text.match(/^---\n([\s\S]*?)\n---\n([\s\S]*)$/);
  if (!m) return null;
  const fm = Object.fromEntries(m[1].split("\n").map((l) => l.match(/^(\w+):\s*(.*)$/)).filter(Boolean).map((x) => [x[1], x[2].replace(/^"|"$/g, "")]));
  return { ...fm, body: m[2].trim() };
}

function noteFor(p, updated) {
  const id = `${BASE}/posts/${p.slug}/${p.lang}`;
  const html = `<p><strong>${p.title}</strong></p><p>${p.body}</p>`;
  const n = {
    id, type: "Note", attributedTo: ACTOR, to: [PUBLIC], cc: [`${ACTOR}/followers`],
    content: html, contentMap: { [p.lang]: html }, url: id, published: new Date(p.date).toISOString(),
  };
  if (updated) n.updated = new Date().toISOString();
  return n;
}

async function scan(announce) {
  let names;
  try {
    names = (await readdir(postsDir)).filter((f) => f.endsWith(".md"));
  } catch {
    return;
  }
  for (const f of names) {
    const full = join(postsDir, f);
    const st = await stat(full);
    const prev = files.get(f);
    if (prev && prev.mtime === st.mtimeMs) continue;
    const p = parsePost(await readFile(full, "utf8"));
    const name = f.match(/^([a-z0-9_-]+)\.([a-z]{2})\.md$/);
    if (!p || !name) continue;
    p.slug ||= name[1];
    p.lang = name[2];
    const n = noteFor(p, prev != null);
    notes.set(n.id, { "@context": CTX, ...n });
    files.set(f, { mtime: st.mtimeMs, noteId: n.id });
    const act = newActivity(prev ? "Update" : "Create", n, { to: [PUBLIC], cc: [`${ACTOR}/followers`] });
    if (!prev) outbox.unshift(act.id);
    const wasPinned = pinned.has(n.id);
    if (p.pinned === "true") pinned.add(n.id);
    else pinned.delete(n.id);
    const acts = [act];
    if (wasPinned !== pinned.has(n.id)) {
      const { "@context": _, ...actor } = actorDoc();
      acts.push(newActivity("Update", actor, { to: [PUBLIC] }));
    }
    if (announce) {
      const inboxes = new Set(followers.values());
      for (const a of acts) for (const inbox of inboxes) await deliver(inbox, a);
    }
  }
}

function send(res, status, body, type = "application/activity+json") {
  res.writeHead(status, { "Content-Type": type, Vary: bug === "no-vary" ? "Origin" : "Accept" });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

function wantsJson(req) {
  return /application\/(activity\+json|ld\+json)/.test(req.headers.accept ?? "");
}

async function inbox(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const request = new Request(new URL(req.url, BASE), { method: "POST", headers, body });
  let act;
  try {
    act = JSON.parse(body.toString("utf8"));
  } catch {
    return send(res, 400, { error: "bad json" });
  }
  if (bug !== "accept-any-signature") {
    const v = await verifyRequestDetailed(request, { documentLoader: loader, contextLoader: loader });
    if (!v.verified) return send(res, 401, { error: v.reason.type });
    if (v.key.ownerId?.href !== act.actor) return send(res, 401, { error: "key owner is not the actor" });
  }
  if (act.type === "Follow" && act.object === ACTOR) {
    const { document: actor } = await loader(act.actor);
    followers.set(act.actor, actor.inbox);
    const accept = newActivity("Accept", { id: act.id, type: "Follow", actor: act.actor, object: ACTOR }, { to: [act.actor] });
    setTimeout(() => deliver(actor.inbox, accept), 200);
  } else if (act.type === "Undo" && act.object?.type === "Follow") {
    followers.delete(act.actor);
  }
  send(res, 202, "", "text/plain");
}

async function handle(req, res) {
  const url = new URL(req.url, BASE);
  const path = url.pathname;
  const page = url.searchParams.has("page") ? Number(url.searchParams.get("page")) : null;
  if (req.method === "POST" && (path === `/@${HANDLE}/inbox` || path === "/inbox")) return inbox(req, res);
  if (req.method !== "GET") return send(res, 405, {});
  if (path === "/.well-known/webfinger") {
    const r = url.searchParams.get("resource");
    if (r !== `acct:${HANDLE}@127.0.0.1:${port}` && r !== ACTOR) return send(res, 404, {});
    return send(res, 200, {
      subject: `acct:${HANDLE}@127.0.0.1:${port}`,
      aliases: [ACTOR],
      links: [
        { rel: "self", type: "application/activity+json", href: ACTOR },
        { rel: "http://webfinger.net/rel/profile-page", type: "text/html", href: ACTOR },
      ],
    }, "application/jrd+json");
  }
  if (path === `/@${HANDLE}`) {
    return wantsJson(req) ? send(res, 200, actorDoc()) : send(res, 200, "<!doctype html><html><body>Reports</body></html>", "text/html; charset=utf-8");
  }
  if (path === `/@${HANDLE}/outbox`) {
    return send(res, 200, collection(`${ACTOR}/outbox`, outbox.length, page, outbox.map((id) => activities.get(id)).map(({ "@context": _, ...a }) => a)));
  }
  if (path === `/@${HANDLE}/followers`) return send(res, 200, collection(`${ACTOR}/followers`, followers.size, page, []));
  if (path === `/@${HANDLE}/featured`) {
    const items = [...pinned].map((id) => notes.get(id)).map(({ "@context": _, ...n }) => n);
    return send(res, 200, { "@context": CTX, id: `${ACTOR}/featured`, type: "OrderedCollection", totalItems: items.length, orderedItems: items });
  }
  if (path.startsWith("/activities/")) {
    const a = activities.get(`${BASE}${path}`);
    return a ? send(res, 200, a) : send(res, 404, {});
  }
  if (path.startsWith("/posts/")) {
    const n = notes.get(`${BASE}${path}`);
    if (!n) return send(res, 404, {});
    return wantsJson(req) ? send(res, 200, n) : send(res, 200, "<!doctype html><html><body>post</body></html>", "text/html; charset=utf-8");
  }
  send(res, 404, {});
}

await scan(false);
setInterval(() => scan(true).catch((e) => console.error(`fake: scan: ${e.message}`)), 500).unref();
http.createServer((req, res) => handle(req, res).catch((e) => {
  console.error(`fake: ${e.stack}`);
  if (!res.headersSent) send(res, 500, {});
})).listen(Number(port), "127.0.0.1", () => console.error(`fake crieur on ${BASE}`));
