import assert from "node:assert/strict";
import { addMask, inGitHubActions, variableEntry } from "./_github.ts";

Deno.test("addMask() escapes what the runner unescapes in command data", () => {
  assert.equal(addMask("a%b"), "::add-mask::a%25b\n");
  assert.equal(addMask("plain.token-1"), "::add-mask::plain.token-1\n");
});

Deno.test("variableEntry() frames any value with a delimiter it does not contain", () => {
  const value = "tok<<EOF%0A=x";
  const entry = variableEntry("TOKEN", value);
  const [first, body, last, end] = entry.split("\n");
  assert.match(first, /^TOKEN<<ghadelimiter_[0-9a-f-]{36}$/);
  assert.equal(body, value);
  assert.equal(last, first.slice("TOKEN<<".length));
  assert.equal(end, "");
});

Deno.test("inGitHubActions() follows GITHUB_ACTIONS=true only", () => {
  assert.equal(inGitHubActions(() => "true"), true);
  assert.equal(inGitHubActions(() => undefined), false);
  assert.equal(inGitHubActions(() => "1"), false);
});
