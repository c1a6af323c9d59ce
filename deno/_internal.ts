// Symbols shared between the client and the helpers that drive it, kept
// off the public API.

/** `client[REFRESH_IF_DUE]()` implements {@linkcode refreshIfDue}. */
export const REFRESH_IF_DUE: unique symbol = Symbol("freshtoken.refreshIfDue");
