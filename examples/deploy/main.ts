/**
 * A Deno Deploy app that calls Genesys Cloud with tokens that never expire
 * on it. The token lives in the app's Deno KV database (one per timeline),
 * encrypted, shared by every instance of the timeline, and kept fresh by the
 * cron job that registerRefreshCron registers for this very client (one
 * configuration, one KV), so requests do not wait on the token endpoint.
 *
 * Deno Deploy finds cron jobs by evaluating this module's top-level code at
 * deployment: the job is registered here, awaited, before `Deno.serve`, and
 * never inside the handler, behind a condition or after the server starts
 * (tests/deploy_example_test.ts checks the order).
 *
 * Environment (set them in the app's settings, never in code):
 * - GENESYS_CLOUD_REGION, GENESYS_CLOUD_CLIENT_ID, GENESYS_CLOUD_CLIENT_SECRET
 * - FRESHTOKEN_ENCRYPTION_KEY: base64 of 32 random bytes (`openssl rand -base64 32`)
 * For any other OAuth server, or a local test server, set FRESHTOKEN_TOKEN_URL,
 * FRESHTOKEN_CLIENT_ID, FRESHTOKEN_CLIENT_SECRET and FRESHTOKEN_API_URL instead.
 *
 * Run it locally as Deploy runs it, with `deno task start` (`deno run`, KV and
 * cron enabled by deno.json; Deploy needs no flag for them), OpenTelemetry on:
 * freshtoken's spans and metrics go to the collector OTEL_EXPORTER_OTLP_ENDPOINT
 * names. Deno Deploy collects them itself. PORT sets the local port (8000).
 *
 * @module
 */

import {
  createTokenClient,
  genesysCloud,
  registerRefreshCron,
  type TokenClientOptions,
  TokenError,
} from "@freshtoken/freshtoken";

const env = (name: string) => Deno.env.get(name) ?? "";

const target: TokenClientOptions = env("FRESHTOKEN_TOKEN_URL")
  ? {
    tokenUrl: env("FRESHTOKEN_TOKEN_URL"),
    clientId: env("FRESHTOKEN_CLIENT_ID"),
    clientSecret: env("FRESHTOKEN_CLIENT_SECRET"),
    baseUrl: env("FRESHTOKEN_API_URL"),
  }
  : genesysCloud({
    region: env("GENESYS_CLOUD_REGION"),
    clientId: env("GENESYS_CLOUD_CLIENT_ID"),
    clientSecret: env("GENESYS_CLOUD_CLIENT_SECRET"),
  });

const client = createTokenClient({
  ...target,
  // The timeline's KV database on Deploy; FRESHTOKEN_KV names a local file or a denokv URL instead.
  kv: await Deno.openKv(env("FRESHTOKEN_KV") || undefined),
  encryptionKey: env("FRESHTOKEN_ENCRYPTION_KEY") || undefined,
});

// The refresh job (every 5 minutes), registered during module evaluation and
// before Deno.serve, where Deno Deploy reads cron jobs at deployment.
await registerRefreshCron(client);

async function handler(request: Request): Promise<Response> {
  if (new URL(request.url).pathname !== "/") return new Response("not found", { status: 404 });
  try {
    const response = await client.fetch("/api/v2/organizations/me");
    const organization = await response.json();
    const { expiresAt, refreshAt } = client.status();
    return Response.json({
      status: response.status,
      organization: organization.name,
      token: { expiresAt, refreshAt },
    });
  } catch (error) {
    // TokenError messages never contain the secret or a token.
    const message = error instanceof TokenError ? error.message : "unexpected error";
    return Response.json({ error: message }, { status: 502 });
  }
}

Deno.serve(env("PORT") ? { port: Number(env("PORT")) } : {}, handler);
