import assert from "node:assert/strict";
import { optionsFromEnv } from "./_env.ts";
import { TokenError } from "./token_error.ts";

const from = (vars: Record<string, string>) => optionsFromEnv((name) => vars[name]);

Deno.test("optionsFromEnv() reads the Genesys Cloud and the generic variables", () => {
  assert.deepEqual(from({}), []);
  assert.deepEqual(
    from({
      GENESYS_CLOUD_REGION: "eu-west-1",
      GENESYS_CLOUD_CLIENT_ID: "gid",
      GENESYS_CLOUD_CLIENT_SECRET: "gsecret",
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/token",
      FRESHTOKEN_CLIENT_ID: "id",
      FRESHTOKEN_CLIENT_SECRET: "secret",
      FRESHTOKEN_SCOPE: " read  write ",
      FRESHTOKEN_AUDIENCE: "api",
      FRESHTOKEN_ENCRYPTION_KEY: "a2V5",
    }),
    [
      {
        tokenUrl: "https://auth.example.com/token",
        clientId: "id",
        clientSecret: "secret",
        scope: ["read", "write"],
        audience: "api",
        encryptionKey: "a2V5",
      },
      {
        tokenUrl: "https://login.mypurecloud.ie/oauth/token",
        baseUrl: "https://api.mypurecloud.ie",
        clientId: "gid",
        clientSecret: "gsecret",
        encryptionKey: "a2V5",
      },
    ],
  );
});

Deno.test("the Terraform provider's GENESYSCLOUD_* variables serve too; both spellings must agree", () => {
  const terraform = {
    GENESYSCLOUD_REGION: "eu-west-1",
    GENESYSCLOUD_OAUTHCLIENT_ID: "tid",
    GENESYSCLOUD_OAUTHCLIENT_SECRET: "env-canary-secret-t",
  };
  const [options] = from(terraform);
  assert.equal(options.tokenUrl, "https://login.mypurecloud.ie/oauth/token");
  assert.equal(options.clientId, "tid");
  // The same values in both spellings are one client; different ones are an error naming both.
  assert.equal(from({ ...terraform, GENESYS_CLOUD_CLIENT_ID: "tid" }).length, 1);
  assert.throws(
    () => from({ ...terraform, GENESYS_CLOUD_CLIENT_SECRET: "env-canary-secret-other" }),
    (e: unknown) =>
      e instanceof TokenError && e.code === "config" &&
      /GENESYS_CLOUD_CLIENT_SECRET and GENESYSCLOUD_OAUTHCLIENT_SECRET/.test(e.message) &&
      !/canary/.test(e.message),
  );
});

Deno.test("clientOptionsFromEnv() reads a record as the CLI and the cron module read the environment", async () => {
  const { clientOptionsFromEnv } = await import("./mod.ts");
  const vars = {
    GENESYS_CLOUD_REGION: "us_east_1",
    GENESYS_CLOUD_CLIENT_ID: "g",
    GENESYS_CLOUD_CLIENT_SECRET: "s",
  };
  assert.deepEqual(clientOptionsFromEnv(vars), from(vars));
  assert.deepEqual(clientOptionsFromEnv({ toString: "x" } as Record<string, string>), []);
});

Deno.test("optionsFromEnv() names what is missing from a partly set group", () => {
  assert.throws(
    () => from({ GENESYS_CLOUD_REGION: "eu_west_1", GENESYS_CLOUD_CLIENT_ID: "id" }),
    (e: unknown) =>
      e instanceof TokenError && e.code === "config" &&
      /GENESYS_CLOUD_CLIENT_SECRET/.test(e.message),
  );
});

Deno.test("optionsFromEnv() takes FRESHTOKEN_PRIVATE_KEY instead of the secret: PEM, one-line PEM or JWK", () => {
  const base = {
    FRESHTOKEN_TOKEN_URL: "https://auth.example.com/token",
    FRESHTOKEN_CLIENT_ID: "id",
  };
  const pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----";
  const cases: [string, string | Record<string, string>][] = [
    [pem, pem],
    [pem.replaceAll("\n", "\\n"), pem],
    ['{"kty":"EC","crv":"P-256","d":"x","kid":"k"}', { kty: "EC", crv: "P-256", d: "x", kid: "k" }],
  ];
  for (const [text, privateKey] of cases) {
    assert.deepEqual(from({ ...base, FRESHTOKEN_PRIVATE_KEY: text, FRESHTOKEN_KEY_ID: "k1" }), [{
      tokenUrl: "https://auth.example.com/token",
      clientId: "id",
      authMethod: "private_key_jwt",
      privateKey,
      keyId: "k1",
    }]);
  }
  const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
  for (const text of [cert, cert.replaceAll("\n", "\\n")]) {
    const [options] = from({ ...base, FRESHTOKEN_PRIVATE_KEY: pem, FRESHTOKEN_CERTIFICATE: text });
    assert.equal(options.certificate, cert);
  }
  assert.throws(
    () => from({ ...base, FRESHTOKEN_PRIVATE_KEY: '{"d": "canary-secret' }),
    (e: unknown) =>
      e instanceof TokenError && e.code === "config" && /FRESHTOKEN_PRIVATE_KEY/.test(e.message) &&
      !e.message.includes("canary"),
  );
  // Neither a secret nor a key: the secret is what is asked for.
  assert.throws(
    () => from(base),
    (e: unknown) => e instanceof TokenError && /FRESHTOKEN_CLIENT_SECRET/.test(e.message),
  );
});

Deno.test("optionsFromEnv() takes FRESHTOKEN_ISSUER instead of FRESHTOKEN_TOKEN_URL, not both", () => {
  const base = { FRESHTOKEN_CLIENT_ID: "id", FRESHTOKEN_CLIENT_SECRET: "secret" };
  assert.deepEqual(from({ ...base, FRESHTOKEN_ISSUER: " https://auth.example.com " }), [
    { issuer: "https://auth.example.com", clientId: "id", clientSecret: "secret" },
  ]);
  assert.throws(
    () =>
      from({
        ...base,
        FRESHTOKEN_ISSUER: "https://auth.example.com",
        FRESHTOKEN_TOKEN_URL: "https://auth.example.com/token",
      }),
    (e: unknown) =>
      e instanceof TokenError && e.code === "config" &&
      e.message.includes("FRESHTOKEN_TOKEN_URL and FRESHTOKEN_ISSUER are both set"),
  );
  assert.throws(
    () => from(base),
    (e: unknown) =>
      e instanceof TokenError &&
      e.message.includes("set FRESHTOKEN_TOKEN_URL (or FRESHTOKEN_ISSUER) too"),
  );
});

Deno.test("optionsFromEnv() takes each value by precedence: FRESHTOKEN_* ahead of the Genesys variables", () => {
  const fresh = { FRESHTOKEN_CLIENT_ID: "id", FRESHTOKEN_CLIENT_SECRET: "env-canary-secret-f" };
  const genesys = { GENESYS_CLOUD_CLIENT_ID: "gid", GENESYS_CLOUD_CLIENT_SECRET: "gsecret" };
  const regions: Record<string, string>[] = [
    { GENESYS_CLOUD_REGION: "eu_west_1" },
    { GENESYSCLOUD_REGION: "eu-west-1" },
  ];
  for (const region of regions) {
    for (const vars of [{ ...fresh, ...region }, { ...fresh, ...genesys, ...region }]) {
      const [options, more] = from(vars);
      assert.equal(options.tokenUrl, "https://login.mypurecloud.ie/oauth/token");
      assert.equal(options.clientId, "id");
      assert.equal(options.clientSecret, fresh.FRESHTOKEN_CLIENT_SECRET);
      assert.equal(more, undefined);
    }
  }
  // With an endpoint of its own, FRESHTOKEN_* is its own client: the Genesys secret stays Genesys'.
  const [, genesysClient] = from({
    ...fresh,
    ...genesys,
    GENESYS_CLOUD_REGION: "eu_west_1",
    FRESHTOKEN_TOKEN_URL: "https://auth.example.com/token",
  });
  assert.equal(genesysClient.clientId, "gid");
});

Deno.test("an unknown region names the variable that holds it, never its value", () => {
  const creds = { GENESYS_CLOUD_CLIENT_ID: "gid", GENESYS_CLOUD_CLIENT_SECRET: "gsecret" };
  for (const variable of ["GENESYS_CLOUD_REGION", "GENESYSCLOUD_REGION"]) {
    assert.throws(
      () => from({ ...creds, [variable]: "env-canary-secret-r" }),
      (e: unknown) =>
        e instanceof TokenError && e.code === "config" &&
        e.message.startsWith(`config: ${variable} is not a Genesys Cloud region`) &&
        !e.message.includes("canary") && !e.message.includes("domain:"),
    );
  }
});

Deno.test("optionsFromEnv() gives every client FRESHTOKEN_BASE_URL as baseUrl, checked", () => {
  const vars = {
    GENESYS_CLOUD_REGION: "eu-west-1",
    GENESYS_CLOUD_CLIENT_ID: "gid",
    GENESYS_CLOUD_CLIENT_SECRET: "gsecret",
    FRESHTOKEN_TOKEN_URL: "https://auth.example.com/token",
    FRESHTOKEN_CLIENT_ID: "id",
    FRESHTOKEN_CLIENT_SECRET: "secret",
  };
  const clients = from({ ...vars, FRESHTOKEN_BASE_URL: " https://api.example.com/ " });
  assert.deepEqual(clients.map((o) => o.baseUrl), [
    "https://api.example.com",
    "https://api.example.com",
  ]);
  assert.ok(
    !JSON.stringify(clients[1]).includes("gsecret"),
    "the preset still prints without its secret",
  );
  assert.equal(
    from({ ...vars, FRESHTOKEN_BASE_URL: "http://127.0.0.1:8080" })[0].baseUrl,
    "http://127.0.0.1:8080",
  );
  for (
    const bad of [
      "http://api.example.com",
      "https://api.example.com/v2",
      "api.example.com",
      "https://u:p@a.example",
    ]
  ) {
    assert.throws(
      () => from({ ...vars, FRESHTOKEN_BASE_URL: bad }),
      (e) =>
        e instanceof TokenError && e.code === "config" && /FRESHTOKEN_BASE_URL/.test(e.message) &&
        !e.message.includes(bad),
    );
  }
});

Deno.test("optionsFromEnv() reads the pool size: FRESHTOKEN_POOL_SIZE for all, GENESYSCLOUD_TOKEN_POOL_SIZE for Genesys", () => {
  const genesys = {
    GENESYS_CLOUD_REGION: "eu-west-1",
    GENESYS_CLOUD_CLIENT_ID: "gid",
    GENESYS_CLOUD_CLIENT_SECRET: "gsecret",
  };
  assert.equal(from({ ...genesys, GENESYSCLOUD_TOKEN_POOL_SIZE: "8" })[0].poolSize, 8);
  assert.equal(
    from({ ...genesys, GENESYSCLOUD_TOKEN_POOL_SIZE: "8", FRESHTOKEN_POOL_SIZE: " 4 " })[0]
      .poolSize,
    4,
  );
  assert.equal(from(genesys)[0].poolSize, undefined);
  for (const bad of ["many", "-1", "2.5"]) {
    assert.throws(
      () => from({ ...genesys, FRESHTOKEN_POOL_SIZE: bad }),
      (e: unknown) =>
        e instanceof TokenError && e.code === "config" &&
        e.message.includes("FRESHTOKEN_POOL_SIZE"),
    );
  }
});
