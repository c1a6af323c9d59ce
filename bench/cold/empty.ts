// Cold-start floor: a Deno process that does nothing.
