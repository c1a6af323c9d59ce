// GitHub Actions for the CLI (docs/DESIGN.md, "Pipelines"): masking a token
// before it is printed or exported, and the runner's variable files.
//
// The runner reads workflow commands from a step's stdout and stderr alike
// (actions/runner, src/Runner.Worker/Handlers/ScriptHandler.cs hands both
// streams to its command manager), so `::add-mask::` goes to stderr: it
// registers the mask even when stdout is captured by `$(…)`, and stdout
// stays the bare token.

/** Whether this runs in a GitHub Actions step. */
export function inGitHubActions(env: (name: string) => string | undefined): boolean {
  return env("GITHUB_ACTIONS") === "true";
}

/** The `::add-mask::` command for `value`, its data escaped as the runner unescapes it. */
export function addMask(value: string): string {
  const data = value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
  return `::add-mask::${data}\n`;
}

/**
 * `NAME<<DELIMITER`, the value, `DELIMITER`: the syntax of `$GITHUB_ENV`
 * and `$GITHUB_OUTPUT` that carries any value, with a random delimiter
 * the value does not contain.
 */
export function variableEntry(name: string, value: string): string {
  let delimiter: string;
  do delimiter = `ghadelimiter_${crypto.randomUUID()}`; while (value.includes(delimiter));
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
}
