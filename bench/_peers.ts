// The ways to get a client-credentials token that the benchmarks compare:
// freshtoken, oauth4webapi with the memoised promise a developer would write
// around it, and Genesys Cloud's own JavaScript SDK. Each is a `get()` that
// returns an access token, with the clock injectable where the library allows.
// One module per peer, so that a cold start loads only its own library.

export { CLIENT_ID, CLIENT_SECRET, type Getter } from "./peers/common.ts";
export { freshtoken } from "./peers/freshtoken.ts";
export { oauth4webapiMemo } from "./peers/oauth4webapi.ts";
export { genesysSdk } from "./peers/genesys_sdk.ts";
