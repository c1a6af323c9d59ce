import assert from "node:assert/strict";
import { createTokenClient, GENESYS_CLOUD_REGIONS, genesysCloud, TokenError } from "./mod.ts";

const creds = { clientId: "id", clientSecret: "genesys-canary-secret" };

Deno.test("genesysCloud() maps region names, dashed names and domains to login and api hosts", () => {
  for (const region of ["eu_west_1", "eu-west-1", "EU-WEST-1", "mypurecloud.ie"]) {
    const o = genesysCloud({ region, ...creds });
    assert.equal(o.tokenUrl, "https://login.mypurecloud.ie/oauth/token", region);
    assert.equal(o.baseUrl, "https://api.mypurecloud.ie");
    assert.equal(o.clientId, "id");
  }
  assert.equal(
    genesysCloud({ region: "us_east_2", ...creds }).tokenUrl,
    "https://login.use2.us-gov-pure.cloud/oauth/token",
  );
  assert.equal(Object.keys(GENESYS_CLOUD_REGIONS).length, 18);
});

Deno.test("the region table is the official SDK's (purecloud-platform-client-v2, pinned for the benchmarks)", async () => {
  const { default: sdk } = await import(
    "purecloud-platform-client-v2/src/purecloud-platform-client-v2/PureCloudRegionHosts.js"
  );
  assert.deepEqual({ ...GENESYS_CLOUD_REGIONS }, sdk);
});

Deno.test("genesysCloud({ domain }) takes any domain, for new regions and private gateways", () => {
  const o = genesysCloud({ domain: "Gw.Example-Gateway.com", ...creds });
  assert.equal(o.tokenUrl, "https://login.gw.example-gateway.com/oauth/token");
  assert.equal(o.baseUrl, "https://api.gw.example-gateway.com");
  for (
    const bad of [
      { domain: "https://mypurecloud.ie", ...creds },
      { domain: "mypurecloud.ie/x", ...creds },
      { domain: "login.mypurecloud.ie", ...creds },
      { domain: "localhost", ...creds },
      { domain: "mypurecloud.ie", region: "eu_west_1", ...creds },
      { ...creds },
    ]
  ) {
    assert.throws(
      () => genesysCloud(bad),
      (e: unknown) => e instanceof TokenError && e.code === "config",
      JSON.stringify(bad),
    );
  }
});

Deno.test("genesysCloud() rejects an unknown region with a config error", () => {
  for (const region of ["mars_north_1", "", "toString", "__proto__", "api.mypurecloud.ie"]) {
    assert.throws(
      () => genesysCloud({ region, ...creds }),
      (e: unknown) => e instanceof TokenError && e.code === "config",
      region,
    );
  }
});

Deno.test("genesysCloud()'s options print without the secret, and spreading them still works", () => {
  const options = genesysCloud({ region: "eu_west_1", ...creds });
  const printed = [
    Deno.inspect(options),
    Deno.inspect({ nested: options }),
    JSON.stringify(options),
    JSON.stringify({ nested: options }),
  ];
  for (const text of printed) {
    assert.ok(!text.includes(creds.clientSecret), text);
    assert.match(text, /redacted/);
    assert.match(text, /login\.mypurecloud\.ie/);
  }
  const spread = { ...options, timeoutMs: 5000 };
  assert.deepEqual(Object.keys(spread).sort(), [
    "baseUrl",
    "clientId",
    "clientSecret",
    "timeoutMs",
    "tokenUrl",
  ]);
  assert.equal(spread.clientSecret, creds.clientSecret);
  assert.equal(createTokenClient(spread).status().hasToken, false);
});
