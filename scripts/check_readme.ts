// Checks the README's code blocks that `deno check --doc-only README.md`
// does not: shell blocks, the shell of GitHub Actions `run:` steps and of
// GitLab CI `script:` lists get `bash -n`; JSON blocks must parse. A block in
// any other language fails the check, so none goes unchecked.
//
// Until freshtoken is on JSR, every `jsr:@freshtoken/freshtoken…` name the
// README uses must work from a clone: the README's import map (its JSON
// block) maps each to the file deno.json exports it as, a project using that
// map type-checks with every name imported, and the README's `deno install`
// line for a clone installs a CLI that runs.
//
// Usage: deno run --allow-read --allow-write --allow-run scripts/check_readme.ts [README.md]

const path = Deno.args[0] ?? "README.md";
const text = await Deno.readTextFile(path);
const blocks = [...text.matchAll(/^```(\w*)[^\n]*\n([\s\S]*?)^```$/gm)];
let failures = 0;

async function bashSyntax(script: string, where: string): Promise<void> {
  const child = new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stderr } = await child.output();
  if (code !== 0) {
    failures++;
    console.error(`${where}: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

/**
 * The shell in a YAML block: the bodies of `run: |` steps and of one-line
 * `run:` steps (GitHub Actions), and the items of `script:` lists (GitLab CI).
 */
function runScripts(yaml: string): string[] {
  const scripts: string[] = [];
  const lines = yaml.split("\n");
  /** The lines below `i` indented deeper than `indent`, as written. */
  const block = (i: number, indent: number) => {
    const body: string[] = [];
    while (
      i + 1 < lines.length && (lines[i + 1].trim() === "" || lines[i + 1].search(/\S/) > indent)
    ) {
      body.push(lines[++i]);
    }
    return body;
  };
  for (let i = 0; i < lines.length; i++) {
    const multi = lines[i].match(/^(\s*)-? ?run: \|\s*$/);
    const single = lines[i].match(/^\s*-? ?run: (?!\|)(.+)$/);
    const list = lines[i].match(/^(\s*)script:\s*$/);
    if (multi) {
      scripts.push(block(i, multi[1].length).map((l) => l.trim()).join("\n"));
    } else if (single) {
      scripts.push(single[1]);
    } else if (list) {
      const items = block(i, list[1].length).map((l) => l.trim().replace(/^- /, ""));
      scripts.push(items.join("\n"));
    }
  }
  return scripts;
}

for (const [, lang, body] of blocks) {
  const line = text.slice(0, text.indexOf(body)).split("\n").length;
  const where = `${path}:${line} (${lang || "no language"})`;
  if (lang === "ts") continue; // deno check --doc-only
  if (lang === "sh") {
    await bashSyntax(body, where);
  } else if (lang === "json") {
    try {
      JSON.parse(body);
    } catch (error) {
      failures++;
      console.error(`${where}: ${(error as Error).message}`);
    }
  } else if (lang === "yaml") {
    const scripts = runScripts(body);
    if (scripts.length === 0) {
      failures++;
      console.error(`${where}: a YAML block without a run: step to check`);
    }
    for (const script of scripts) await bashSyntax(script, where);
  } else {
    failures++;
    console.error(`${where}: no check for this kind of block`);
  }
}
const clone = await cloneForms();
console.log(
  `README code blocks: ${blocks.length} found, ${failures} failed; ` +
    `jsr: names with a working clone form: ${clone}`,
);
if (failures > 0) Deno.exit(1);

/**
 * Checks that each `jsr:@freshtoken/freshtoken…` name the README uses
 * works from a clone; returns how many do, as `N of M`.
 */
async function cloneForms(): Promise<string> {
  const root = new URL("..", import.meta.url);
  const exports: Record<string, string> = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", root)),
  ).exports;
  const names = [...new Set(text.match(/jsr:@freshtoken\/freshtoken(?:\/[a-z]+)?/g) ?? [])];
  const fail = (why: string) => {
    failures++;
    console.error(`${path}: ${why}`);
  };
  const mapBlock = blocks.find(([, lang, body]) => lang === "json" && body.includes('"jsr:'));
  if (mapBlock === undefined) {
    fail("no import map (a JSON block) gives the clone form of the jsr: names");
    return `0 of ${names.length}`;
  }
  const map: Record<string, string> = JSON.parse(mapBlock[2]).imports ?? {};
  const CLONE = "../freshtoken/";
  let working = 0;
  for (const name of names) {
    const subpath = `.${name.slice("jsr:@freshtoken/freshtoken".length)}`;
    const target = map[name];
    if (target !== `${CLONE}${exports[subpath]?.replace(/^\.\//, "")}`) {
      fail(`the import map does not map ${name} to the clone's ${exports[subpath] ?? "export"}`);
    } else {
      working++;
    }
  }
  // A project beside the clone, with the README's map, importing every name.
  const dir = await Deno.makeTempDir({ prefix: "readme-clone-" });
  try {
    await Deno.symlink(decodeURIComponent(root.pathname), `${dir}/freshtoken`);
    await Deno.mkdir(`${dir}/app`);
    await Deno.writeTextFile(`${dir}/app/deno.json`, mapBlock[2]);
    await Deno.writeTextFile(
      `${dir}/app/main.ts`,
      names.map((name, i) => `import * as m${i} from "${name}";\nvoid m${i};\n`).join(""),
    );
    const checked = await run(["check", "main.ts"], `${dir}/app`);
    if (!checked.ok) {
      working = 0;
      fail(
        `a project importing the jsr: names through the README's map fails deno check:\n${checked.stderr}`,
      );
    }
    // The README's install line for a clone, into a root of its own, and the CLI it makes.
    const install = text.match(/^deno install (.*) deno\/cli\.ts$/m);
    if (install === undefined || install === null) {
      fail("no `deno install … deno/cli.ts` line installs the CLI from a clone");
    } else {
      const flags = install[1].split(/\s+/).filter((f) => f !== "-g");
      // Each JSR install line says what the clone's does.
      for (
        const [, given] of text.matchAll(/deno install (.*) jsr:@freshtoken\/freshtoken\/cli/g)
      ) {
        if (given !== install[1]) fail("a `deno install … jsr:` line differs from the clone's");
      }
      const installed = await run(
        ["install", "-g", "--root", `${dir}/cli`, ...flags, "deno/cli.ts"],
        decodeURIComponent(root.pathname),
      );
      // The command it makes runs `deno` from PATH: this one's, whichever Deno runs the check.
      const deno = Deno.execPath().replace(/\/[^/]*$/, "");
      const version = installed.ok
        ? await new Deno.Command("sh", {
          args: [
            "-c",
            'PATH="$1:$PATH" exec "$2" --version',
            "sh",
            deno,
            `${dir}/cli/bin/freshtoken`,
          ],
          stdout: "null",
        }).output()
        : undefined;
      if (!version?.success) {
        fail(`the CLI installed from the clone does not run: ${installed.stderr}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return `${working} of ${names.length}`;
}

/** Runs `deno args` in `cwd`. */
async function run(args: string[], cwd: string): Promise<{ ok: boolean; stderr: string }> {
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  return { ok: success, stderr: new TextDecoder().decode(stderr) };
}
