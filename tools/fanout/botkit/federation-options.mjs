// BotKit 0.4.1 creates its Fedify federation itself and passes it only kv,
// queue and userAgent, so a bot cannot federate with loopback servers:
// Fedify's document loader refuses private addresses, and the harness's
// followers live on 127.0.0.1. This module stands in for "@fedify/fedify"
// in BotKit's own imports (see loader.mjs) and adds Fedify's documented
// createFederation options from the environment; everything else is
// Fedify's. (Later BotKit releases take these as createBot's
// federationOptions.)
import { createFederation as fedifyCreateFederation } from "@fedify/fedify";

export * from "@fedify/fedify";

export function createFederation(options) {
  const extra = {};
  if (process.env.CRIEUR_ALLOW_PRIVATE === "true") extra.allowPrivateAddress = true;
  // Fedify signs first with RFC 9421 and falls back to draft-cavage on a
  // 4xx; BOTKIT_FIRST_KNOCK=draft-cavage-http-signatures-12 starts with the
  // draft Mastodon and the harness verify.
  if (process.env.BOTKIT_FIRST_KNOCK) extra.firstKnock = process.env.BOTKIT_FIRST_KNOCK;
  return fedifyCreateFederation({ ...options, ...extra });
}
