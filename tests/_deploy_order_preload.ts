// Preloaded into the Deploy example (`deno run --preload`): prints, in the
// order they happen, each `Deno.cron` registration, the start of
// `Deno.serve`, and the end of the entry module's evaluation (the `load`
// event), one `order: …` line each. Deno Deploy reads cron jobs from the
// top-level code it evaluates at deployment, before the server starts.

const say = (what: string) => console.log(`order: ${what}`);

function wrap(name: "cron" | "serve", describe: (args: unknown[]) => string): void {
  const original = Deno[name] as (...args: unknown[]) => unknown;
  Object.defineProperty(Deno, name, {
    configurable: true,
    writable: true,
    value(...args: unknown[]) {
      say(describe(args));
      return original.apply(Deno, args);
    },
  });
}

wrap("cron", (args) => `cron ${String(args[0])}`);
wrap("serve", () => "serve");
addEventListener("load", () => say("evaluated"));
