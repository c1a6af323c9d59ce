// The CLI as a pipeline runs it: a subprocess, against the real token
// server (oidc-provider on 127.0.0.1).

import assert from "node:assert/strict";
import { CLI, runCli } from "./_cli.ts";
import { type OidcServer, type SecretClient, startOidcServer } from "./_oidc.ts";

const APP: SecretClient = { client_id: "pipeline", client_secret: "cli-canary-secret-9" };

/** The permissions the CLI's documentation asks for. */
const FLAGS = [
  "--unstable-kv",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-read",
  "--allow-write",
];

/** Runs the CLI; whatever happened, the secret is on neither stream. */
const cli = (args: string[], env: Record<string, string> = {}, flags: string[] = FLAGS) =>
  runCli(flags, args, env, [APP.client_secret]);

async function withServer(fn: (server: OidcServer, env: Record<string, string>) => Promise<void>) {
  const server = await startOidcServer([APP]);
  const env = {
    FRESHTOKEN_TOKEN_URL: server.tokenUrl,
    FRESHTOKEN_CLIENT_ID: APP.client_id,
    FRESHTOKEN_CLIENT_SECRET: APP.client_secret,
  };
  try {
    await fn(server, env);
  } finally {
    await server.close();
  }
}

Deno.test("freshtoken token prints exactly the token, which the server says is live", async () => {
  await withServer(async (server, env) => {
    const run = await cli(["token"], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    assert.match(run.stdout, /^\S+\n$/);
    const info = await server.introspect(run.stdout.trim(), APP);
    assert.equal(info.active, true);
  });
});

Deno.test("--header and --json print the header line and the token as JSON", async () => {
  await withServer(async (server, env) => {
    const header = await cli(["token", "--header"], env);
    assert.equal(header.code, 0);
    const match = header.stdout.match(/^Authorization: Bearer (\S+)\n$/);
    assert.ok(match, header.stdout.replace(/Bearer \S+/, "Bearer …"));
    assert.equal((await server.introspect(match[1], APP)).active, true);

    const json = await cli(["token", "--json"], env);
    assert.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(Object.keys(parsed).sort(), [
      "accessToken",
      "expiresAt",
      "expiresAtIso",
      "expiresIn",
      "tokenType",
    ]);
    assert.equal(new Date(parsed.expiresAtIso).getTime(), parsed.expiresAt);
    assert.equal(parsed.tokenType, "Bearer");
    assert.ok(parsed.expiresIn > 590 && parsed.expiresIn <= 600, String(parsed.expiresIn));
  });
});

Deno.test("--kv shares one token between pipeline steps; status never shows it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withServer(async (server, env) => {
      const kv = ["--kv", `${dir}/steps.kv`];
      const empty = await cli(["status", ...kv], env);
      assert.match(
        empty.stdout,
        /^no usable token cached for client \S+ at http:\/\/127\.0\.0\.1:\d+\n$/,
      );
      assert.equal(empty.code, 1, "status exits 1 without a usable token");
      const before = await server.tokenRequests();
      const step1 = await cli(["token", ...kv], env);
      const step2 = await cli(["token", ...kv], env);
      assert.equal(step1.code, 0);
      assert.equal(step2.stdout, step1.stdout);
      assert.equal(await server.tokenRequests() - before, 1);

      const status = await cli(["status", ...kv], env);
      assert.equal(status.code, 0);
      assert.match(
        status.stdout,
        /^token cached for client \S+ at http:\/\/127\.0\.0\.1:\d+: expires \S+ \(in (9m \d+s|10m 0s)\), refreshes from \S+ \(in (8m \d+s|9m 0s)\)\n$/,
      );
      assert.ok(!status.stdout.includes(step1.stdout.trim()), "status printed the token");
      const json = JSON.parse((await cli(["status", "--json", ...kv], env)).stdout);
      assert.equal(json.hasToken, true);
      assert.ok(!JSON.stringify(json).includes(step1.stdout.trim()));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exit codes tell configuration, credentials and transient failures apart", async () => {
  await withServer(async (_server, env) => {
    const wrong = await cli(["token"], { ...env, FRESHTOKEN_CLIENT_SECRET: "wrong-canary-secret" });
    assert.equal(wrong.code, 3);
    assert.equal(wrong.stdout, "");
    // The message says where: the token endpoint's origin (never its path) and the client id.
    const origin = new URL(env.FRESHTOKEN_TOKEN_URL).origin;
    assert.ok(
      wrong.stderr.startsWith(
        `freshtoken: invalid_client (HTTP 401) from ${origin} for client ${APP.client_id}: `,
      ),
      wrong.stderr,
    );
    assert.ok(!wrong.stderr.includes("wrong-canary-secret"));

    const none = await cli(["token"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no client configured/);
    assert.equal((await cli(["token", "--bogus"], env)).code, 2);
    assert.equal((await cli(["token", "--region", "mars_north_1"], env)).code, 2);
    assert.equal((await cli(["token", "--token-url", "http://example.com/t"], env)).code, 2);

    const down = await cli(
      ["token", "--token-url", "http://127.0.0.1:9/token", "--timeout", "500"],
      env,
    );
    assert.equal(down.code, 4);
    assert.match(
      down.stderr,
      /^freshtoken: network from http:\/\/127\.0\.0\.1:9 for client [^:]+: .*retry later/,
    );
  });
});

Deno.test("--help explains the commands with examples", async () => {
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:/);
  assert.match(help.stdout, /TOKEN=\$\(freshtoken token/);
  assert.match(help.stdout, /Exit codes:/);
});

Deno.test("the CLI's manners: --version, no command, an unknown flag, each with its exit code", async () => {
  const version = await cli(["--version"]);
  assert.equal(version.code, 0);
  const meta = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(version.stdout, `freshtoken ${meta.version}\n`);

  const bare = await cli([]);
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, "");
  assert.match(bare.stderr, /Usage:/);

  for (
    const [given, meant] of [["--heder", "--header"], [
      "--client-secrt=x-canary",
      "--client-secret",
    ], [
      "--minvalid",
      "--min-valid",
    ]]
  ) {
    const run = await cli(["token", given]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`unknown flag \\(argument 2\\); did you mean ${meant}\\?`));
    assert.ok(!run.stderr.includes(given), "the flag given is not echoed");
  }
});

Deno.test("deno install makes a freshtoken command that works", async () => {
  const root = await Deno.makeTempDir();
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: [
        "install",
        "-g",
        "-q",
        "-n",
        "freshtoken",
        "--root",
        root,
        "--unstable-kv",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-write",
        CLI,
      ],
      stdin: "null",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    await withServer(async (server, env) => {
      const run = await new Deno.Command(`${root}/bin/freshtoken`, {
        args: ["token"],
        env,
        stdin: "null",
      }).output();
      assert.equal(run.code, 0);
      const token = new TextDecoder().decode(run.stdout).trim();
      assert.equal((await server.introspect(token, APP)).active, true);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("an argument the CLI does not understand is named by its position, never echoed", async () => {
  const stray = "stray-canary-secret-7";
  for (
    const args of [
      ["token", stray],
      [stray],
      ["token", `--${stray}`],
      ["token", "--client-id", "--client-secret", stray],
    ]
  ) {
    const run = await cli(args);
    assert.equal(run.code, 2, run.stderr);
    assert.ok(!run.stderr.includes(stray) && !run.stdout.includes(stray), run.stderr);
    assert.match(run.stderr, /\(argument \d\)|needs a value/);
    assert.equal(run.stderr.split("(see --help)").length - 1, 1, run.stderr);
  }
});

Deno.test("misuse gets exit 2 and the flag or path to fix, never a retryable or unexpected failure", async () => {
  await withServer(async (_server, env) => {
    const dir = await Deno.makeTempDir();
    try {
      const cases: [string[], string[], Record<string, string>, RegExp][] = [
        [
          ["token", "--kv", `${dir}/missing/dir/x.kv`],
          FLAGS,
          env,
          /cannot open the --kv store: its folder does not exist/,
        ],
        [["token", "--kv", `${dir}/x.kv`], FLAGS.slice(1), env, /--unstable-kv/],
        [
          ["token", "--kv", `${dir}/x.kv`],
          ["--unstable-kv", "--allow-net", "--allow-env"],
          env,
          /--allow-read and --allow-write/,
        ],
        [["token"], ["--allow-net", "--allow-read"], env, /--allow-env/],
        [["token"], ["--allow-env", "--allow-read"], env, /--allow-net/],
        [
          ["exec", "--", "true"],
          ["--allow-net", "--allow-env", "--allow-run"],
          env,
          /--allow-write/,
        ],
        [["token", "--region", "eu_west_1"], FLAGS, env, /choose one of --region and --token-url/],
        [
          ["token"],
          FLAGS,
          {
            ...env,
            GENESYS_CLOUD_REGION: "eu_west_1",
            GENESYSCLOUD_REGION: "us_east_1",
          },
          /GENESYS_CLOUD_REGION and GENESYSCLOUD_REGION are both set/,
        ],
        [["status", "--header"], FLAGS, env, /--header is for the token command/],
        [
          ["token", "--timeout", "-5"],
          FLAGS,
          env,
          /--timeout must be a number of milliseconds, at least 1/,
        ],
        [["token", "--min-valid", "soon"], FLAGS, env, /--min-valid must be a number of seconds/],
      ];
      for (const [args, flags, vars, message] of cases) {
        const withUrl = args[1] === "--region"
          ? [...args, "--token-url", env.FRESHTOKEN_TOKEN_URL]
          : args;
        const run = await cli(withUrl, vars, flags);
        assert.equal(run.code, 2, `${args.join(" ")} [${flags.join(" ")}]: ${run.stderr}`);
        assert.match(run.stderr, message);
        assert.doesNotMatch(run.stderr, /unexpected failure|retry later/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
