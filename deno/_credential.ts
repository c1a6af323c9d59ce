// Credentials asked for at each token request (docs/DESIGN.md, "Credentials
// asked for"): the `clientSecret` function and `clientAssertion`. The core
// asks (its `credential` effect), checks what it gets and decides what
// follows; this only calls the function, within the time the core gives.

/** A function that gives a credential. */
export type CredentialFn = () => string | Promise<string>;

/**
 * What `credential()` gives within `timeoutMs`, or `undefined` if it throws,
 * gives anything but a string or takes longer. Nothing it throws is kept:
 * its message could quote the credential.
 */
export async function askCredential(
  credential: CredentialFn,
  timeoutMs: number,
): Promise<string | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    const given = await Promise.race([Promise.resolve().then(credential), late]);
    return typeof given === "string" ? given : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The function that gives `options`' credential at each request: a
 * `clientSecret` function, else `clientAssertion` (the core refuses both
 * together, and a `clientAssertion` that is not a function is refused here).
 */
export function credentialFn(
  options: { clientSecret?: unknown; clientAssertion?: unknown },
): CredentialFn | undefined {
  if (typeof options.clientSecret === "function") return options.clientSecret as CredentialFn;
  return options.clientAssertion as CredentialFn | undefined;
}
