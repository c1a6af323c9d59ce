// AES-256-GCM for tokens at rest in KV (docs/DESIGN.md, "Shared state").

/**
 * Checks an `encryptionKey` option: base64 of exactly 32 bytes. Returns the
 * raw key, or an error message that never shows the key.
 */
export function decodeKey(encoded: unknown): Uint8Array | string {
  if (typeof encoded !== "string") return "encryptionKey must be a base64 string";
  let raw: Uint8Array;
  try {
    raw = unbase64(encoded.trim());
  } catch {
    return "encryptionKey is not valid base64";
  }
  return raw.length === 32
    ? raw
    : `encryptionKey must be 32 bytes (base64 of 32 random bytes), got ${raw.length}`;
}

/** What a sealed value looks like in KV. */
export interface Sealed {
  kid: string;
  iv: string;
  ct: string;
}

/**
 * AES-256-GCM with a random 96-bit IV per value. The key id (from the key
 * itself) and the client's KV id are bound as additional data, so a value
 * cannot be moved to another client's key or read with another key.
 */
export class Cipher {
  private constructor(
    readonly kid: string,
    readonly key: CryptoKey,
    readonly aad: Uint8Array<ArrayBuffer>,
  ) {}

  /** A cipher for `raw` (32 bytes), bound to the client's KV `id` and the stored `format`. */
  static async create(raw: Uint8Array, id: string, format: number): Promise<Cipher> {
    const bytes = new Uint8Array(raw);
    const kid = hex(await crypto.subtle.digest("SHA-256", bytes)).slice(0, 16);
    const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new Cipher(kid, key, new TextEncoder().encode(`freshtoken/v${format}/${kid}/${id}`));
  }

  async seal(plain: string): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: this.aad },
      this.key,
      new TextEncoder().encode(plain),
    );
    return { kid: this.kid, iv: base64(iv), ct: base64(new Uint8Array(ct)) };
  }

  /** The plaintext, or `undefined` for anything this key did not seal. */
  async open(value: Record<string, unknown>): Promise<string | undefined> {
    if (value.kid !== this.kid || typeof value.iv !== "string" || typeof value.ct !== "string") {
      return undefined;
    }
    try {
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: unbase64(value.iv), additionalData: this.aad },
        this.key,
        unbase64(value.ct),
      );
      return new TextDecoder("utf-8", { fatal: true }).decode(plain);
    } catch {
      return undefined;
    }
  }
}

/** Lower-case hex of `buffer`. */
export function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Standard base64 of `bytes`. */
export function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** The bytes of standard base64 `text`; throws on anything else. */
export function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
