// Cold start: import Genesys Cloud's SDK and log in (it has nowhere to keep a token).
import { genesysSdk } from "../peers/genesys_sdk.ts";
await genesysSdk(Deno.env.get("BASE_URL")!).get();
Deno.exit(0); // the SDK's configuration file watcher would keep the process alive
