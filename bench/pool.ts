// The pool part of `deno task bench` alone (bench/_pool.ts): prints its
// table, its goals and what the API saw behind each row; writes nothing.
//
// Usage: deno run -A --unstable-kv bench/pool.ts

import { poolSection } from "./_pool.ts";

const verdicts: string[] = [];
await poolSection((met, text) => verdicts.push(`- ${met ? "met" : "**missed**"}: ${text}`));
console.log(verdicts.join("\n"));
