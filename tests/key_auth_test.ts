// Client authentication without a shared secret in the request: JWT
// assertions (private_key_jwt, client_secret_jwt; RFC 7523) and mutual TLS
// (self_signed_tls_client_auth; RFC 8705), against the real `oidc-provider`
// on 127.0.0.1, plus a loopback token endpoint that checks the assertion
// Microsoft Entra ID expects with certificate credentials (x5t#S256).

import assert from "node:assert/strict";
import { createTokenClient, TokenError } from "../deno/mod.ts";
import type { TokenClientOptions, TokenEvent } from "../deno/mod.ts";
import { runCli } from "./_cli.ts";
import { type OidcClient, type OidcServer, startOidcServer } from "./_oidc.ts";
import { type Certified, keyPair, Openssl, pem, publicJwk, publicJwkOfPem, RSA } from "./_keys.ts";

// Keys and certificates, made once for this file.
const rsa = await keyPair(RSA);
const rsaJwk = { ...await crypto.subtle.exportKey("jwk", rsa.privateKey), kid: "rsa-1" };
const ec = await keyPair({ name: "ECDSA", namedCurve: "P-256" });
const ecPem = pem(await crypto.subtle.exportKey("pkcs8", ec.privateKey), "PRIVATE KEY");
// A key the caller imported, non-extractable, bound to PS256.
const pss = await crypto.subtle.generateKey(
  { ...RSA, name: "RSA-PSS" },
  false,
  ["sign", "verify"],
) as CryptoKeyPair;
const ed = await keyPair({ name: "Ed25519" });
const edPem = pem(await crypto.subtle.exportKey("pkcs8", ed.privateKey), "PRIVATE KEY");
const other = await keyPair(RSA);
const HMAC_SECRET = `jwt-canary-secret-${crypto.randomUUID()}`;

const openssl = new Openssl();
let tls: { ca: string; server: Certified };
let mtls: Certified;
let stranger: Certified;
let entra: Certified;
try {
  tls = await openssl.server();
  mtls = await openssl.selfSigned("mtls-client", "ec");
  stranger = await openssl.selfSigned("unregistered-client", "ec");
  entra = await openssl.selfSigned("entra-app", "rsa");
} finally {
  openssl.remove();
}

/** A JWK for a client's `jwks`: public, without `alg` (the assertion's header says it). */
const registered = async (key: CryptoKey, kid?: string) => {
  const { alg: _alg, ...jwk } = publicJwk(await crypto.subtle.exportKey("jwk", key));
  return kid ? { ...jwk, kid } : jwk;
};

/** A `private_key_jwt` client registered with `key`'s public half. */
const keyClient = async (client_id: string, key: CryptoKey, kid?: string): Promise<OidcClient> => ({
  client_id,
  token_endpoint_auth_method: "private_key_jwt",
  jwks: { keys: [await registered(key, kid)] },
});
const JWK_CLIENT = await keyClient("svc-rsa-jwk", rsa.publicKey, "rsa-1");
const PEM_CLIENT = await keyClient("svc-ec-pem", ec.publicKey);
const PSS_CLIENT = await keyClient("svc-pss-cryptokey", pss.publicKey);
const ED_CLIENT = await keyClient("svc-ed25519-pem", ed.publicKey);
const HMAC_CLIENT: OidcClient = {
  client_id: "svc-hmac",
  client_secret: HMAC_SECRET,
  token_endpoint_auth_method: "client_secret_jwt",
};
const MTLS_CLIENT: OidcClient = {
  client_id: "svc-mtls",
  token_endpoint_auth_method: "self_signed_tls_client_auth",
  jwks: {
    keys: [{
      ...await publicJwkOfPem(mtls.key, { name: "ECDSA", namedCurve: "P-256" }),
      x5c: [mtls.der],
    } as JsonWebKey],
  },
};
const RESOURCE: OidcClient = { client_id: "resource-server", client_secret: "rs-canary-secret-7" };

async function withServer(fn: (server: OidcServer) => Promise<void>): Promise<void> {
  const server = await startOidcServer(
    [JWK_CLIENT, PEM_CLIENT, PSS_CLIENT, ED_CLIENT, HMAC_CLIENT, MTLS_CLIENT, RESOURCE],
    { cert: tls.server.cert, key: tls.server.key },
  );
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** Every way of authenticating these tests cover, as client options. */
function cases(server: OidcServer): [OidcClient, Partial<TokenClientOptions>][] {
  return [
    [JWK_CLIENT, { authMethod: "private_key_jwt", privateKey: rsaJwk }],
    [PEM_CLIENT, { authMethod: "private_key_jwt", privateKey: ecPem }],
    [PSS_CLIENT, { authMethod: "private_key_jwt", privateKey: pss.privateKey }],
    [ED_CLIENT, { authMethod: "private_key_jwt", privateKey: edPem }],
    [HMAC_CLIENT, { authMethod: "client_secret_jwt", clientSecret: HMAC_SECRET }],
    [MTLS_CLIENT, {
      authMethod: "self_signed_tls_client_auth",
      tokenUrl: server.tlsTokenUrl,
      clientCertificate: { cert: mtls.cert, key: mtls.key, caCerts: [tls.ca] },
    }],
  ];
}

function clientFor(
  server: OidcServer,
  c: OidcClient,
  options: Partial<TokenClientOptions>,
) {
  return createTokenClient({ tokenUrl: server.tokenUrl, clientId: c.client_id, ...options });
}

/** Everything a client shows of itself and its errors and events. */
function shown(
  client: ReturnType<typeof createTokenClient>,
  events: TokenEvent[],
  errors: unknown[],
) {
  return [
    Deno.inspect(client),
    JSON.stringify(client),
    Deno.inspect(client.status(), { depth: 5 }),
    JSON.stringify(events),
    ...errors.flatMap((e) => [Deno.inspect(e), JSON.stringify(e), String(e)]),
  ].join("\n");
}

/** Pieces of key material that must never be shown. */
const MATERIAL = [
  rsaJwk.d!,
  rsaJwk.p!,
  rsaJwk.q!,
  ...ecPem.split("\n").slice(1, -2),
  ...edPem.split("\n").slice(1, -2),
  ...mtls.key.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----")),
  HMAC_SECRET,
];

Deno.test("each key form and method gets a live token; two forced refreshes in a row sign afresh", async () => {
  await withServer(async (server) => {
    for (const [c, options] of cases(server)) {
      const events: TokenEvent[] = [];
      const client = clientFor(server, c, { ...options, onEvent: (e) => events.push(e) });
      const before = await server.tokenRequests();
      const tokens = [await client.getToken(), await client.refresh(), await client.refresh()];
      assert.equal(await server.tokenRequests() - before, 3, c.client_id);
      assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 3, c.client_id);
      for (const token of tokens) {
        const info = await server.introspect(token.accessToken, RESOURCE);
        assert.equal(info.active, true, c.client_id);
        assert.equal(info.client_id, c.client_id);
      }
      // One attempt each: no assertion was refused as a replay and retried.
      assert.equal(events.filter((e) => e.type === "fetch_error").length, 0, c.client_id);
      const seen = shown(client, events, []);
      for (const piece of MATERIAL) assert.ok(!seen.includes(piece), c.client_id);
    }
  });
});

Deno.test("a wrong key, secret or certificate is invalid_client after one request, unretried, showing nothing secret", async () => {
  await withServer(async (server) => {
    const wrong: [OidcClient, Partial<TokenClientOptions>][] = [
      [JWK_CLIENT, {
        authMethod: "private_key_jwt",
        privateKey: { ...await crypto.subtle.exportKey("jwk", other.privateKey), kid: "rsa-1" },
      }],
      [PEM_CLIENT, { authMethod: "private_key_jwt", privateKey: edPem }],
      [HMAC_CLIENT, {
        authMethod: "client_secret_jwt",
        clientSecret: `wrong-canary-secret-${crypto.randomUUID()}`,
      }],
      [MTLS_CLIENT, {
        authMethod: "self_signed_tls_client_auth",
        tokenUrl: server.tlsTokenUrl,
        clientCertificate: { cert: stranger.cert, key: stranger.key, caCerts: [tls.ca] },
      }],
    ];
    for (const [c, options] of wrong) {
      const events: TokenEvent[] = [];
      const client = clientFor(server, c, { ...options, onEvent: (e) => events.push(e) });
      const before = await server.tokenRequests();
      const error = await client.getToken().then(() => undefined, (e) => e);
      assert.ok(error instanceof TokenError, c.client_id);
      assert.equal(error.code, "invalid_client", c.client_id);
      assert.equal(error.retryable, false);
      assert.equal(await server.tokenRequests() - before, 1, c.client_id);
      const seen = shown(client, events, [error]);
      for (const piece of [...MATERIAL, ...stranger.key.split("\n").slice(1, -2)]) {
        assert.ok(!seen.includes(piece), c.client_id);
      }
    }
  });
});

/**
 * A token endpoint that checks assertions as Microsoft Entra ID describes
 * its certificate credentials: PS256 signed by the certificate's key, with
 * the certificate's SHA-256 thumbprint in `x5t#S256`. It answers a token,
 * or (`echo`) an error quoting the assertion.
 */
async function entraLike(audience: string, echo = false) {
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    await publicJwkOfPem(entra.key, { name: "RSA-PSS", hash: "SHA-256" }),
    { name: "RSA-PSS", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const assertions: string[] = [];
  const problems: string[] = [];
  const decode = (part: string) =>
    Uint8Array.from(atob(part.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
  const json = (part: string) => JSON.parse(new TextDecoder().decode(decode(part)));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const assertion = form.get("client_assertion") ?? "";
    assertions.push(assertion);
    const [header, claims, signature] = assertion.split(".");
    const h = json(header);
    const c = json(claims);
    const now = Date.now() / 1000;
    const check = (ok: boolean, what: string) => ok || problems.push(what);
    check(
      form.get("client_assertion_type") ===
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      "client_assertion_type",
    );
    check(form.get("client_id") === "entra-app-id", "client_id");
    check(!form.has("client_secret") && !req.headers.has("authorization"), "no secret");
    check(h.alg === "PS256" && h.typ === "JWT", "alg and typ");
    check(h["x5t#S256"] === entra.thumbprint, "x5t#S256");
    check(c.iss === "entra-app-id" && c.sub === "entra-app-id", "iss and sub");
    check(c.aud === audience, "aud");
    check(c.exp - c.iat <= 60 && c.exp > now && c.nbf <= now + 1, "iat, nbf and exp");
    check(typeof c.jti === "string" && c.jti.length >= 16, "jti");
    check(
      await crypto.subtle.verify(
        { name: "RSA-PSS", saltLength: 32 },
        publicKey,
        decode(signature),
        new TextEncoder().encode(`${header}.${claims}`),
      ),
      "signature",
    );
    if (echo) {
      return Response.json({
        error: "invalid_client",
        error_description: `AADSTS700027: assertion ${assertion} refused`,
      }, { status: 401 });
    }
    return Response.json({
      access_token: `canary-token-${crypto.randomUUID()}`,
      token_type: "Bearer",
      expires_in: 3599,
    });
  });
  return {
    /** A client of this endpoint, but for the thumbprint. */
    options: {
      tokenUrl: `http://127.0.0.1:${server.addr.port}/tenant/oauth2/v2.0/token`,
      clientId: "entra-app-id",
      authMethod: "private_key_jwt",
      privateKey: entra.key,
      signingAlgorithm: "PS256",
      assertionAudience: audience,
    } satisfies TokenClientOptions,
    assertions,
    problems,
    close: () => server.shutdown(),
  };
}

Deno.test("Entra-style certificate credentials: PS256 with the certificate's x5t#S256, each request signed afresh", async () => {
  const audience = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";
  const server = await entraLike(audience);
  try {
    for (const thumbprint of [{ certificate: entra.cert }, { x5tS256: entra.thumbprint }]) {
      const client = createTokenClient({ ...server.options, ...thumbprint });
      await client.getToken();
      await client.refresh();
    }
    assert.deepEqual(server.problems, []);
    assert.equal(server.assertions.length, 4);
    const ids = server.assertions.map((a) => JSON.parse(atob(a.split(".")[1])).jti);
    assert.equal(new Set(ids).size, 4);
  } finally {
    await server.close();
  }
});

Deno.test("an assertion the server quotes back is redacted from the error", async () => {
  const audience = "http://audience.example/token";
  const server = await entraLike(audience, true);
  try {
    const events: TokenEvent[] = [];
    const client = createTokenClient({
      ...server.options,
      certificate: entra.cert,
      onEvent: (e) => events.push(e),
    });
    const error = await client.getToken().then(() => undefined, (e) => e);
    assert.ok(error instanceof TokenError);
    assert.equal(error.code, "invalid_client");
    assert.match(error.message, /AADSTS700027/);
    assert.equal(server.assertions.length, 1);
    const seen = shown(client, events, [error]);
    for (const part of server.assertions[0].split(".")) assert.ok(!seen.includes(part));
    for (const line of entra.key.split("\n").slice(1, -2)) assert.ok(!seen.includes(line));
  } finally {
    await server.close();
  }
});

Deno.test("every key option is accepted (deno/client_test.ts has the others)", () => {
  const keyed: Required<
    Pick<
      TokenClientOptions,
      | "tokenUrl"
      | "clientId"
      | "authMethod"
      | "privateKey"
      | "keyId"
      | "signingAlgorithm"
      | "assertionAudience"
      | "certificate"
      | "clientCertificate"
    >
  > = {
    tokenUrl: "https://login.example.com/oauth/token",
    clientId: "id",
    authMethod: "private_key_jwt",
    privateKey: entra.key,
    keyId: "key-1",
    signingAlgorithm: "PS256",
    assertionAudience: "https://login.example.com",
    certificate: entra.cert,
    clientCertificate: { cert: mtls.cert, key: mtls.key, caCerts: [tls.ca] },
  };
  const { certificate: _, ...rest } = keyed;
  const thumbprinted: Required<Pick<TokenClientOptions, "x5tS256">> = {
    x5tS256: entra.thumbprint,
  };
  for (const options of [keyed, { ...rest, ...thumbprinted }]) {
    assert.equal(createTokenClient(options).status().hasToken, false);
  }
});

/** A `config` error whose message matches `pattern` and quotes nothing of `material`. */
function configError(pattern: RegExp, material = "") {
  return (e: unknown) => {
    assert.ok(e instanceof TokenError, String(e));
    assert.equal(e.code, "config");
    assert.match(e.message, pattern);
    if (material) assert.ok(!e.message.includes(material));
    return true;
  };
}

Deno.test("bad keys and certificates are config errors at creation, naming what to fix", () => {
  const base = { tokenUrl: "https://login.example.com/token", clientId: "app" };
  const jwt = { ...base, authMethod: "private_key_jwt" as const };
  const pkcs1 =
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEo-canary-secret\n-----END RSA PRIVATE KEY-----";
  const cases: [TokenClientOptions, RegExp, string?][] = [
    [{ ...jwt, privateKey: pkcs1 }, /openssl pkcs8 -topk8/, "canary"],
    [{ ...jwt, privateKey: "not-a-key-canary-secret" }, /PKCS#8 PEM/, "canary"],
    [{ ...jwt, privateKey: publicJwk(rsaJwk) }, /public JWK/],
    [{ ...jwt, privateKey: rsa.publicKey }, /private CryptoKey that can sign/],
    [{ ...jwt, privateKey: rsaJwk, signingAlgorithm: "ES256" }, /does not fit the privateKey/],
    [{ ...jwt, privateKey: { ...rsaJwk, alg: "ES256" } }, /the key's own alg ES256 does not fit/],
    [
      { ...jwt, privateKey: pss.privateKey, signingAlgorithm: "RS256" },
      /RS256 does not fit the privateKey, a CryptoKey for PS256/,
    ],
    [{ ...jwt, privateKey: rsaJwk, clientSecret: "s" }, /clientSecret is not used/],
    [{ ...jwt }, /private_key_jwt needs privateKey/],
    [{ ...base, clientSecret: "x".repeat(31), authMethod: "client_secret_jwt" }, /32 bytes/],
    [{ ...base, clientSecret: "secret", privateKey: rsaJwk }, /privateKey is for authMethod/],
    [{ ...jwt, privateKey: rsaJwk, certificate: "nope" }, /PEM certificate/],
    [{ ...jwt, privateKey: rsaJwk, x5tS256: "short" }, /43 characters/],
    [{ ...base, authMethod: "tls_client_auth" }, /needs clientCertificate/],
    [
      { ...base, clientSecret: "secret", clientCertificate: { cert: mtls.cert, key: "x" } },
      /clientCertificate must be/,
    ],
    [
      {
        ...base,
        authMethod: "tls_client_auth",
        clientCertificate: {
          cert: mtls.cert,
          key: stranger.cert.replace("CERTIFICATE", "PRIVATE KEY"),
        },
      },
      /Deno refused its cert or key/,
      stranger.cert.split("\n")[1],
    ],
  ];
  for (const [options, pattern, material] of cases) {
    assert.throws(
      () => createTokenClient(options),
      configError(pattern, material),
      String(pattern),
    );
  }
});

Deno.test("a key WebCrypto refuses is a config error at the first getToken, before any request", async () => {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    requests++;
    return Response.json({ access_token: "t", token_type: "Bearer", expires_in: 60 });
  });
  try {
    // Well-formed PEM around bytes that are no PKCS#8 key.
    const garbage = pem(new TextEncoder().encode("canary-secret ".repeat(8)), "PRIVATE KEY");
    const client = createTokenClient({
      tokenUrl: `http://127.0.0.1:${server.addr.port}/token`,
      clientId: "app",
      authMethod: "private_key_jwt",
      privateKey: garbage,
    });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        client.getToken(),
        configError(
          /privateKey could not be imported for RS256 or ES256 or EdDSA \(WebCrypto: \w+\)/,
        ),
      );
    }
    assert.equal(requests, 0);
  } finally {
    await server.shutdown();
  }
});

// The CLI, as a pipeline runs it, with a key instead of a secret.

/** The CLI with net and env permissions and `permissions` besides. */
const cli = (args: string[], env: Record<string, string>, permissions: string[]) =>
  runCli(["--allow-net=127.0.0.1", "--allow-env", ...permissions], args, env);

Deno.test("CLI: --private-key FILE, FRESHTOKEN_PRIVATE_KEY as JWK or one-line PEM; exec hides the key", async () => {
  await withServer(async (server) => {
    const dir = Deno.makeTempDirSync();
    try {
      const file = `${dir}/key.json`;
      Deno.writeTextFileSync(file, JSON.stringify(rsaJwk));
      const env = { FRESHTOKEN_TOKEN_URL: server.tokenUrl };
      const runs = [
        await cli(
          [
            "token",
            "--client-id",
            JWK_CLIENT.client_id,
            "--private-key",
            file,
            "--key-id",
            "rsa-1",
          ],
          env,
          [`--allow-read=${file}`],
        ),
        await cli(["token"], {
          ...env,
          FRESHTOKEN_CLIENT_ID: JWK_CLIENT.client_id,
          FRESHTOKEN_PRIVATE_KEY: JSON.stringify(rsaJwk),
        }, []),
        await cli(["token"], {
          ...env,
          FRESHTOKEN_CLIENT_ID: PEM_CLIENT.client_id,
          FRESHTOKEN_PRIVATE_KEY: ecPem.trim().replaceAll("\n", "\\n"),
        }, []),
      ];
      for (const run of runs) {
        assert.equal(run.code, 0, run.stderr);
        const info = await server.introspect(run.stdout.trim(), RESOURCE);
        assert.equal(info.active, true);
        for (const piece of MATERIAL) assert.ok(!run.stderr.includes(piece));
      }
      const denied = await cli(
        ["token", "--client-id", "x", "--private-key", file],
        env,
        [],
      );
      assert.equal(denied.code, 2);
      assert.match(denied.stderr, /--private-key .*--allow-read/);

      const exec = await cli(
        [
          "exec",
          "--",
          "sh",
          "-c",
          'echo "${FRESHTOKEN_PRIVATE_KEY:-no key}|${#FRESHTOKEN_ACCESS_TOKEN}"',
        ],
        {
          ...env,
          FRESHTOKEN_CLIENT_ID: JWK_CLIENT.client_id,
          FRESHTOKEN_PRIVATE_KEY: JSON.stringify(rsaJwk),
        },
        ["--allow-run", "--allow-read", "--allow-write"],
      );
      assert.equal(exec.code, 0, exec.stderr);
      const [key, length] = exec.stdout.trim().split("|");
      assert.equal(key, "no key");
      assert.ok(Number(length) > 20);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
});
