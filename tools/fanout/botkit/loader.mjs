// Module resolution hook: BotKit's import of "@fedify/fedify" gets
// federation-options.mjs, which re-exports Fedify with createFederation
// given the options BotKit 0.4.1 does not pass through.
const wrapper = new URL("./federation-options.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "@fedify/fedify" && context.parentURL?.includes("/node_modules/@fedify/botkit/")) {
    return { url: wrapper, shortCircuit: true };
  }
  return next(specifier, context);
}
