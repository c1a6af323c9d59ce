// The CLI's credentials that change (docs/DESIGN.md, "Credentials asked
// for"): a secret file read for every token request and after a refusal, an
// assertion file, and GitHub Actions' OIDC token from a loopback fake of its
// endpoint; each run as a pipeline runs it, a process of its own.

import assert from "node:assert/strict";
import { runCli } from "./_cli.ts";

const FLAGS = [
  "--unstable-kv",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-read",
  "--allow-write",
];
const OLD = "file-canary-secret-old";
const NEW = "file-canary-secret-new";
/** A JWT-shaped canary (its payload says "…canary-secret"). */
const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvaWRjLWNhbmFyeS1zZWNyZXQifQ.c2ln";
const REQUEST_TOKEN = "request-canary-secret-for-the-id-token";

interface Endpoint {
  url: string;
  requests: { authorization: string; form: URLSearchParams; url: URL }[];
  close(): Promise<void>;
}

/** A loopback server: `answer` decides each request's response. */
function serve(answer: (r: Endpoint["requests"][number]) => Response): Endpoint {
  const requests: Endpoint["requests"] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    const seen = {
      authorization: r.headers.get("authorization") ?? "",
      form: new URLSearchParams(await r.text()),
      url: new URL(r.url),
    };
    requests.push(seen);
    return answer(seen);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

const token = () =>
  Response.json({
    access_token: `canary-token-${crypto.randomUUID().replaceAll("-", "")}`,
    token_type: "Bearer",
    expires_in: 3600,
  });
const refused = () => Response.json({ error: "invalid_client" }, { status: 401 });
const basic = (secret: string) => `Basic ${btoa(`app:${secret}`)}`;

Deno.test("--client-secret-file is read for every token request, and again after invalid_client", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/secret`;
  await Deno.writeTextFile(file, `${OLD}\n`); // a secrets file's line end is not part of the secret
  let accepted = OLD;
  const server = serve((r) => {
    if (r.authorization === basic(accepted)) return token();
    return refused();
  });
  try {
    const args = ["token", "--token-url", `${server.url}/token`, "--client-id", "app"];
    const first = await runCli(FLAGS, [...args, "--client-secret-file", file], {}, [OLD, NEW]);
    assert.equal(first.code, 0, first.stderr);
    // The secret rotates at the server first; the file follows while the
    // request is refused (Vault Agent rewrites its sink): no failed call.
    accepted = NEW;
    const rotating = serve((r) => {
      if (r.authorization === basic(NEW)) return token();
      Deno.writeTextFileSync(file, NEW);
      return refused();
    });
    try {
      const flags = ["--token-url", `${rotating.url}/token`, "--client-id", "app"];
      const second = await runCli(FLAGS, ["token", ...flags], {
        FRESHTOKEN_CLIENT_SECRET_FILE: file,
      }, [OLD, NEW]);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(rotating.requests.map((r) => r.authorization), [basic(OLD), basic(NEW)]);
    } finally {
      await rotating.close();
    }
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--client-secret-file that cannot be read is a config error naming the flag", async () => {
  const run = await runCli(FLAGS, [
    "token",
    "--token-url",
    "http://127.0.0.1:9/token",
    "--client-id",
    "app",
    "--client-secret-file",
    "/nonexistent/secret",
  ], {});
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--client-secret-file takes the name of a readable file/);
});

Deno.test("--client-secret-file and a --client-secret are refused together", async () => {
  const run = await runCli(
    FLAGS,
    [
      "token",
      "--token-url",
      "http://127.0.0.1:9/token",
      "--client-id",
      "app",
      "--client-secret",
      OLD,
      "--client-secret-file",
      "/etc/hostname",
    ],
    {},
    [OLD],
  );
  assert.equal(run.code, 2);
  assert.match(run.stderr, /choose one of --client-secret and --client-secret-file/);
});

Deno.test("--client-assertion-file sends the file's JWT as the client assertion, read for every request", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/token`;
  await Deno.writeTextFile(file, `${JWT}\n`);
  const server = serve((r) => r.form.get("client_assertion") === JWT ? token() : refused());
  try {
    const run = await runCli(
      FLAGS,
      [
        "token",
        "--token-url",
        `${server.url}/token`,
        "--client-id",
        "app",
        "--client-assertion-file",
        file,
      ],
      {},
      [JWT],
    );
    assert.equal(run.code, 0, run.stderr);
    const form = server.requests[0].form;
    assert.equal(
      form.get("client_assertion_type"),
      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    assert.equal(form.get("client_id"), "app");
    assert.equal(server.requests[0].authorization, "");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--github-oidc asks GitHub's ID token endpoint for the audience and sends its token", async () => {
  const github = serve((r) => {
    const ok = r.authorization === `Bearer ${REQUEST_TOKEN}` &&
      r.url.searchParams.get("api-version") === "2.0" &&
      r.url.searchParams.get("audience") === "api://AzureADTokenExchange";
    return ok ? Response.json({ count: 1, value: JWT }) : new Response("no", { status: 403 });
  });
  const entra = serve((r) => r.form.get("client_assertion") === JWT ? token() : refused());
  try {
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${github.url}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
    };
    const args = ["--token-url", `${entra.url}/tenant/oauth2/v2.0/token`, "--client-id", "app"];
    const run = await runCli(
      FLAGS,
      ["token", ...args, "--github-oidc", "api://AzureADTokenExchange"],
      env,
      [JWT, REQUEST_TOKEN],
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(github.requests.length, 1);
    assert.equal(entra.requests.length, 1);
    // A refused ID token request says why, never the request token.
    const wrong = await runCli(FLAGS, ["token", ...args, "--github-oidc", "api://other"], env, [
      JWT,
      REQUEST_TOKEN,
    ]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /--github-oidc: the ID token request answered 403/);
  } finally {
    await github.close();
    await entra.close();
  }
});

Deno.test("--github-oidc bounds the ID token's answer in size", async () => {
  const github = serve(() => new Response("x".repeat(200_000)));
  try {
    const run = await runCli(FLAGS, [
      "token",
      "--token-url",
      "http://127.0.0.1:9/token",
      "--client-id",
      "app",
      "--github-oidc",
      "aud",
    ], {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${github.url}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
    }, [REQUEST_TOKEN]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /the ID token answer is over 65536 bytes/);
  } finally {
    await github.close();
  }
});

Deno.test("--github-oidc outside GitHub Actions says what the job needs", async () => {
  const run = await runCli(FLAGS, [
    "token",
    "--token-url",
    "http://127.0.0.1:9/token",
    "--client-id",
    "app",
    "--github-oidc",
    "aud",
  ], {});
  assert.equal(run.code, 2);
  assert.match(run.stderr, /permissions: id-token: write/);
});

Deno.test("--help lists the credential flags", async () => {
  const run = await runCli(FLAGS, ["--help"], {});
  assert.equal(run.code, 0);
  for (const flag of ["--client-secret-file", "--client-assertion-file", "--github-oidc"]) {
    assert.ok(run.stdout.includes(flag), flag);
  }
  assert.ok(run.stdout.includes("FRESHTOKEN_CLIENT_SECRET_FILE"));
});

Deno.test("exec withholds a variable holding the secret a --client-secret-file gives", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/secret`;
  await Deno.writeTextFile(file, OLD);
  const server = serve((r) => r.authorization === basic(OLD) ? token() : refused());
  try {
    const run = await runCli(
      [...FLAGS, "--allow-run"],
      [
        "exec",
        "--token-url",
        `${server.url}/token`,
        "--client-id",
        "app",
        "--client-secret-file",
        file,
        "--",
        "sh",
        "-c",
        'echo "copy=${SECRET_COPY:-none}"',
      ],
      { SECRET_COPY: OLD },
      [OLD],
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /copy=none/);
    assert.match(run.stderr, /withheld from the command.*SECRET_COPY/);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec with --github-oidc withholds ACTIONS_ID_TOKEN_REQUEST_TOKEN from its command", async () => {
  const github = serve(() => Response.json({ value: JWT }));
  const entra = serve((r) => r.form.get("client_assertion") === JWT ? token() : refused());
  try {
    const run = await runCli([...FLAGS, "--allow-run"], [
      "exec",
      "--token-url",
      `${entra.url}/token`,
      "--client-id",
      "app",
      "--github-oidc",
      "aud",
      "--",
      "sh",
      "-c",
      'echo "request=${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-none}"',
    ], {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${github.url}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
    }, [REQUEST_TOKEN, JWT]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /request=none/);
  } finally {
    await github.close();
    await entra.close();
  }
});

Deno.test("processes sharing --kv follow a rotated --client-secret-file to a new entry, one token request each", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/secret`;
  await Deno.writeTextFile(file, OLD);
  // The server takes both secrets while the rotation runs.
  const server = serve((r) =>
    r.authorization === basic(OLD) || r.authorization === basic(NEW) ? token() : refused()
  );
  try {
    const args = [
      "token",
      "--token-url",
      `${server.url}/token`,
      "--client-id",
      "app",
      "--client-secret-file",
      file,
      "--kv",
      `${dir}/tokens.kv`,
    ];
    const env = { FRESHTOKEN_ENCRYPTION_KEY: btoa(String.fromCharCode(...new Uint8Array(32))) };
    const runs: string[] = [];
    for (const secret of [OLD, OLD, NEW, NEW]) {
      await Deno.writeTextFile(file, secret);
      const run = await runCli(FLAGS, args, env, [OLD, NEW]);
      assert.equal(run.code, 0, run.stderr);
      runs.push(run.stdout.trim());
    }
    assert.deepEqual(server.requests.map((r) => r.authorization), [basic(OLD), basic(NEW)]);
    assert.equal(runs[0], runs[1], "the same secret shares the stored token");
    assert.equal(runs[2], runs[3], "the new secret's entry is shared too");
    assert.notEqual(runs[1], runs[2], "a new secret is a new entry");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
