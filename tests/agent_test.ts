// The token files the agent and exec write, file by file: the mask comes
// before the file, the temporary file's name is short and its own, and a
// file that cannot be written is named with the reason. Real files in a
// temporary folder.

import assert from "node:assert/strict";
import { writeTokenFiles } from "../deno/_token_files.ts";
import { Token } from "../deno/token.ts";
import { TokenError } from "../deno/token_error.ts";

const token = (n: number) => new Token(`canary-token-unit-${n}`, "Bearer", 0);

Deno.test("each token is handed to mask before any file holds it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = { token: `${dir}/token`, header: `${dir}/header` };
    const seen: string[] = [];
    await writeTokenFiles({
      ...files,
      mask: (t) => {
        const inFiles = [files.token, files.header].map((f) => {
          try {
            return Deno.readTextFileSync(f);
          } catch {
            return "";
          }
        }).join("");
        seen.push(inFiles.includes(t.accessToken) ? "after" : "before");
      },
    }, token(1));
    assert.deepEqual(seen, ["before"]);
    assert.equal(await Deno.readTextFile(files.token), "canary-token-unit-1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a 255-byte file name is written: the temporary file's name is short", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/${"t".repeat(255)}`;
    await writeTokenFiles({ token: path }, token(2));
    assert.equal(await Deno.readTextFile(path), "canary-token-unit-2");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["t".repeat(255)], "no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file that cannot be written is a config error naming it and why", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const error = await writeTokenFiles(
      { token: `${dir}/missing/token`, names: { token: "--sink" } },
      token(3),
    ).then(() => undefined, (e) => e);
    assert.ok(error instanceof TokenError);
    assert.equal(error.code, "config");
    assert.match(error.message, /--sink cannot be written: its folder does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
