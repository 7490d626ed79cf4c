import { statusLabel } from "./format";

/** A message or import status as a coloured label (the word carries the meaning, not the colour). */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status}`}>{statusLabel(status)}</span>;
}
