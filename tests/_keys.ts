// Keys and certificates for the key-authentication tests, made fresh for
// each run: key pairs with WebCrypto, X.509 certificates with the openssl
// command (a test CA, a server certificate for 127.0.0.1, self-signed client
// certificates), in a temporary folder removed by `remove()`.

/** PEM of DER bytes under `label`. */
export function pem(der: ArrayBuffer | Uint8Array, label: string): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  const body = btoa(String.fromCharCode(...bytes)).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** The public half of a private JWK: its private members dropped. */
export function publicJwk(jwk: JsonWebKey): JsonWebKey {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, key_ops: _ops, ...rest } = jwk;
  return rest;
}

/** The public JWK of a PKCS#8 PEM key of `algorithm`. */
export async function publicJwkOfPem(
  text: string,
  algorithm: RsaHashedImportParams | EcKeyImportParams,
): Promise<JsonWebKey> {
  const der = Uint8Array.from(
    atob(text.replace(/-----[A-Z ]+-----|\s/g, "")),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey("pkcs8", der, algorithm, true, ["sign"]);
  return publicJwk(await crypto.subtle.exportKey("jwk", key));
}

/** A fresh key pair whose private key can be exported as JWK and PKCS#8. */
export async function keyPair(
  algorithm: RsaHashedKeyGenParams | EcKeyGenParams | { name: "Ed25519" },
): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as CryptoKeyPair;
}

export const RSA: RsaHashedKeyGenParams = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

/** A certificate and its key, PEM. */
export interface Certified {
  cert: string;
  key: string;
  /** The certificate's DER, base64 (a JWK's `x5c` entry). */
  der: string;
  /** Its `x5t#S256` as openssl computes it. */
  thumbprint: string;
}

/** The openssl command in a temporary folder. */
export class Openssl {
  readonly dir = Deno.makeTempDirSync({ prefix: "freshtoken-keys-" });

  /** Runs `openssl ARGS…`; resolves to what it printed. */
  async run(...args: string[]): Promise<string> {
    const output = await new Deno.Command("openssl", { args, cwd: this.dir, stdin: "null" })
      .output();
    if (!output.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    return new TextDecoder().decode(output.stdout);
  }

  read(name: string): string {
    return Deno.readTextFileSync(`${this.dir}/${name}`);
  }

  /** A self-signed certificate for `name` with a new key (`rsa` or `ec`). */
  async selfSigned(name: string, kind: "rsa" | "ec"): Promise<Certified> {
    const key = kind === "rsa"
      ? ["-newkey", "rsa:2048"]
      : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    await this.run(
      "req",
      "-x509",
      ...key,
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    ); // deno-fmt-ignore
    return await this.#certified(name);
  }

  /** A CA, and a server certificate it signed for 127.0.0.1. */
  async server(): Promise<{ ca: string; server: Certified }> {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await this.run(
      "req",
      "-x509",
      ...ec,
      "-days",
      "2",
      "-subj",
      "/CN=freshtoken test CA",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
    ); // deno-fmt-ignore
    await this.run("req", ...ec, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
    Deno.writeTextFileSync(
      `${this.dir}/server.ext`,
      "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await this.run(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "server.ext",
      "-out",
      "server.pem",
    ); // deno-fmt-ignore
    return { ca: this.read("ca.pem"), server: await this.#certified("server") };
  }

  async #certified(name: string): Promise<Certified> {
    await this.run("x509", "-in", `${name}.pem`, "-outform", "DER", "-out", `${name}.der`);
    const der = Deno.readFileSync(`${this.dir}/${name}.der`);
    // The thumbprint as openssl prints it (hex pairs), turned into base64url.
    const printed = await this.run(
      "x509",
      "-in",
      `${name}.pem`,
      "-noout",
      "-fingerprint",
      "-sha256",
    );
    const hex = printed.split("=")[1].trim().split(":");
    const digest = Uint8Array.from(hex, (h) => parseInt(h, 16));
    const thumbprint = btoa(String.fromCharCode(...digest))
      .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    return {
      cert: this.read(`${name}.pem`),
      key: this.read(`${name}.key`),
      der: btoa(String.fromCharCode(...der)),
      thumbprint,
    };
  }

  remove(): void {
    Deno.removeSync(this.dir, { recursive: true });
  }
}
