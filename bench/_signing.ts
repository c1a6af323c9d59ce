// What client authentication costs per token request, in a process of its
// own: the same loopback token endpoint, one client per method, ROUNDS
// forced refreshes each (one token request apiece), the methods taking turns
// so that drift touches them alike. A JWT method's extra time over
// client_secret_basic is its signature (and the assertion around it). Then
// 10,000 cached getToken() calls on a private_key_jwt client, counting the
// token requests they make: signing is never on the hot path.
// Prints JSON: { methods: { name: median µs }, hotCalls, hotRequests }.

import { createTokenClient, type TokenClientOptions } from "../deno/mod.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? "300");
let requests = 0;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  await req.arrayBuffer();
  requests++;
  return Response.json({ access_token: `t${requests}`, token_type: "Bearer", expires_in: 3600 });
});
const tokenUrl = `http://127.0.0.1:${server.addr.port}/token`;

const generate = (algorithm: AlgorithmIdentifier | RsaHashedKeyGenParams | EcKeyGenParams) =>
  crypto.subtle.generateKey(algorithm, false, ["sign", "verify"]) as Promise<CryptoKeyPair>;
const rsa = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
const keys = {
  RS256: await generate({ name: "RSASSA-PKCS1-v1_5", ...rsa }),
  PS256: await generate({ name: "RSA-PSS", ...rsa }),
  ES256: await generate({ name: "ECDSA", namedCurve: "P-256" }),
  EdDSA: await generate({ name: "Ed25519" }),
};

const methods: Record<string, Partial<TokenClientOptions>> = {
  "client_secret_basic": { clientSecret: "bench-secret" },
  "client_secret_jwt (HS256)": {
    authMethod: "client_secret_jwt",
    clientSecret: "a-bench-secret-of-at-least-32-bytes",
  },
};
for (const [name, pair] of Object.entries(keys)) {
  methods[`private_key_jwt (${name})`] = {
    authMethod: "private_key_jwt",
    privateKey: pair.privateKey,
  };
}
const clients = Object.entries(methods).map(([name, options]) =>
  [name, createTokenClient({ tokenUrl, clientId: "bench-client", ...options })] as const
);

// The first request of each imports its key: left out.
for (const [, client] of clients) await client.getToken();
const times: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, client] of clients) {
    const t0 = performance.now();
    await client.refresh();
    (times[name] ??= []).push((performance.now() - t0) * 1000);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const [, jwt] = clients[2];
const before = requests;
const HOT_CALLS = 10_000;
for (let i = 0; i < HOT_CALLS; i++) await jwt.getToken();

console.log(JSON.stringify({
  methods: Object.fromEntries(Object.entries(times).map(([name, ts]) => [name, median(ts)])),
  hotCalls: HOT_CALLS,
  hotRequests: requests - before,
}));
await server.shutdown();
