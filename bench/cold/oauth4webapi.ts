// Cold start: import oauth4webapi and get a token (it has nowhere to keep one).
import { oauth4webapiMemo } from "../peers/oauth4webapi.ts";
await oauth4webapiMemo(Deno.env.get("TOKEN_URL")!).get();
Deno.exit(0);
