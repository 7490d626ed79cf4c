import { formatTime, NONE } from "./format";

/** A <time> with the exact UTC instant in its tooltip and datetime attribute. */
export function Time({ value, seconds }: { value: string | null | undefined; seconds?: boolean }) {
  if (!value) return <span class="muted">{NONE}</span>;
  return (
    <time dateTime={value} title={value}>
      {formatTime(value, { seconds: seconds ?? false })}
    </time>
  );
}
