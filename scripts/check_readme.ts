// Checks the README's code blocks that `deno check --doc-only README.md`
// does not: shell blocks and the shell of YAML `run:` steps get `bash -n`.
// A block in any other language fails the check, so none goes unchecked.
//
// Usage: deno run --allow-read --allow-run scripts/check_readme.ts [README.md]

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

/** The bodies of `run: |` blocks in a YAML step. */
function runScripts(yaml: string): string[] {
  const scripts: string[] = [];
  const lines = yaml.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const match = lines[i].match(/^(\s*)run: \|\s*$/);
    if (!match) continue;
    const body: string[] = [];
    while (
      i + 1 < lines.length &&
      (lines[i + 1].trim() === "" || lines[i + 1].search(/\S/) > match[1].length)
    ) {
      body.push(lines[++i].trim());
    }
    scripts.push(body.join("\n"));
  }
  return scripts;
}

for (const [, lang, body] of blocks) {
  const line = text.slice(0, text.indexOf(body)).split("\n").length;
  const where = `${path}:${line} (${lang || "no language"})`;
  if (lang === "ts") continue; // deno check --doc-only
  if (lang === "sh") {
    await bashSyntax(body, where);
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
console.log(`README code blocks: ${blocks.length} found, ${failures} failed`);
if (failures > 0) Deno.exit(1);
