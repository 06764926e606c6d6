// A BotKit bot that speaks the interface tools/fanout expects of crieur:
// `version`, and `serve` configured by CRIEUR_BASE_URL, CRIEUR_LISTEN,
// CRIEUR_POSTS, CRIEUR_HANDLE (CRIEUR_DATA is unused: everything is in
// memory). Every Markdown file in CRIEUR_POSTS is published once as a
// public Note (session.publish) to the bot's followers; the files there at
// start (the harness's back catalogue) reach the outbox before anyone
// follows. Run through ./crieur-botkit, which loads register.mjs.
import { readdir, readFile } from "node:fs/promises";
import { readFileSync, watch } from "node:fs";
import path from "node:path";
import { configure, getStreamSink } from "@logtape/logtape";
import { createBot, InProcessMessageQueue, MemoryKvStore, ParallelMessageQueue, text } from "@fedify/botkit";
import { markdown } from "@fedify/botkit/text";
import { serve } from "srvx";

const here = path.dirname(new URL(import.meta.url).pathname);
const versionOf = (pkg) => JSON.parse(readFileSync(path.join(here, "node_modules", pkg, "package.json"), "utf8")).version;

function version() {
  console.log(`botkit-fanout: BotKit ${versionOf("@fedify/botkit")}, Fedify ${versionOf("@fedify/fedify")}, Node ${process.version}`);
  // Fedify signs with WebCrypto: Node's own OpenSSL, linked into the node
  // binary. The harness then compares with `openssl speed`, as for crieur.
  console.log(`RSA signatures: OpenSSL ${process.versions.openssl} (built into Node ${process.version})`);
}

// The article body without its YAML front matter.
function body(src) {
  const m = /^---\n[\s\S]*?\n---\n/.exec(src);
  return (m ? src.slice(m[0].length) : src).trim();
}

async function main() {
  const cmd = process.argv[2];
  if (cmd === "version") return version();
  if (cmd !== "serve") {
    console.error("usage: crieur-botkit version | serve (CRIEUR_BASE_URL, CRIEUR_LISTEN, CRIEUR_POSTS, CRIEUR_HANDLE)");
    process.exit(2);
  }
  const base = process.env.CRIEUR_BASE_URL, listen = process.env.CRIEUR_LISTEN;
  const posts = process.env.CRIEUR_POSTS, handle = process.env.CRIEUR_HANDLE;
  if (!base || !listen || !posts || !handle) throw new Error("CRIEUR_BASE_URL, CRIEUR_LISTEN, CRIEUR_POSTS and CRIEUR_HANDLE are required");
  const level = process.env.BOTKIT_LOG_LEVEL ?? "warning";
  await configure({
    sinks: { stderr: getStreamSink(new WritableStream({ write(chunk) { process.stderr.write(chunk); } })) },
    loggers: [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
      { category: "fedify", sinks: ["stderr"], lowestLevel: level },
      { category: "botkit", sinks: ["stderr"], lowestLevel: level },
    ],
  });
  // BOTKIT_QUEUE_WORKERS=N wraps the in-process queue in Fedify's
  // ParallelMessageQueue (N messages at once); unset, the queue as the
  // BotKit docs set it up.
  let queue = new InProcessMessageQueue();
  const workers = Number(process.env.BOTKIT_QUEUE_WORKERS ?? 0);
  if (workers > 0) queue = new ParallelMessageQueue(queue, workers);
  const bot = createBot({
    username: handle,
    name: "crieur fan-out stand-in",
    summary: text`BotKit, measured by crieur's tools/fanout.`,
    kv: new MemoryKvStore(),
    queue,
  });
  const published = new Set();
  let chain = Promise.resolve();
  const publish = (name) => {
    if (!name.endsWith(".md") || name.startsWith(".") || published.has(name)) return;
    published.add(name);
    chain = chain.then(async () => {
      const t0 = performance.now();
      const src = await readFile(path.join(posts, name), "utf8");
      const session = bot.getSession(base);
      const msg = await session.publish(markdown(body(src)), { visibility: "public" });
      console.error(`botkit-fanout: published ${name} as ${msg.id.href} in ${(performance.now() - t0).toFixed(0)} ms`);
    }).catch((err) => console.error(`botkit-fanout: publish ${name}:`, err));
  };
  // The back catalogue first (no followers yet: it only fills the outbox).
  for (const name of (await readdir(posts)).sort()) publish(name);
  await chain;
  watch(posts, (_event, name) => { if (name) publish(String(name)); });
  // A slow rescan in case an inotify event was missed.
  const rescan = setInterval(async () => { for (const name of await readdir(posts)) publish(name); }, 500);
  const [hostname, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  const server = serve({ fetch: (request) => bot.fetch(request), hostname, port, silent: true });
  await server.ready();
  console.error(`botkit-fanout: listening on ${base} as @${handle}`);
  const stop = async () => {
    clearInterval(rescan);
    await server.close(true);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error("botkit-fanout:", err);
  process.exit(1);
});
