// The longest time between two runs of a cron schedule, so that deno/cron.ts
// can ask refreshIfDue() for every token that would fall due before its next
// run (docs/DESIGN.md, "The cron job").

const DAY_MINUTES = 24 * 60;

/**
 * The longest gap between consecutive runs of a five-field cron `schedule`,
 * in seconds. Minute and hour fields may use `*`, numbers, ranges, steps
 * and lists; a schedule restricted by day, month or weekday, or one this
 * cannot read, gives `Infinity`: then every run refreshes.
 */
export function cronPeriodSeconds(schedule: string): number {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5 || fields.slice(2).some((f) => f !== "*")) return Infinity;
  const minutes = expand(fields[0], 0, 59);
  const hours = expand(fields[1], 0, 23);
  if (minutes === undefined || hours === undefined) return Infinity;
  const runs = hours.flatMap((h) => minutes.map((m) => h * 60 + m)).sort((a, b) => a - b);
  let gap = runs[0] + DAY_MINUTES - runs[runs.length - 1];
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap, runs[i] - runs[i - 1]);
  return gap * 60;
}

/** The values a cron field allows, or `undefined` if it is not one this reads. */
function expand(field: string, min: number, max: number): number[] | undefined {
  const values = new Set<number>();
  for (const part of field.split(",")) {
    const match = part.match(/^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/);
    if (!match) return undefined;
    const [, range, start, end, stepText] = match;
    const from = range === "*" ? min : Number(start);
    // `*` and `a-b` span their range; a lone `a` is one value, or with a step, `a` to the end.
    const to = range === "*" ? max : end !== undefined ? Number(end) : stepText ? max : from;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (from < min || to > max || from > to || step < 1) return undefined;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values.size > 0 ? [...values] : undefined;
}
