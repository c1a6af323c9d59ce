// Checks the README's code blocks that `deno check --doc-only README.md`
// does not: shell blocks, the shell of GitHub Actions `run:` steps and of
// GitLab CI `script:` lists get `bash -n`. A block in any other language
// fails the check, so none goes unchecked.
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
