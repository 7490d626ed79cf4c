import { useId } from "preact/hooks";
import { COUNT_NAMES, formatCount, formatRate } from "../../components/format";
import type { UserStats } from "../../types";

function Card({ label, value, note }: { label: string; value: string; note?: string }) {
  const id = useId();
  return (
    <div class="stat-card" role="group" aria-labelledby={id}>
      <span id={id} class="stat-label">
        {label}
      </span>
      <span class="stat-value">{value}</span>
      {note && <span class="stat-note">{note}</span>}
    </div>
  );
}

type RateKey = "delivery_rate" | "read_rate" | "click_rate" | "response_rate";

/** Each rate with what it is taken over; a null rate (nothing to divide by) says why. */
const RATES: [RateKey, string, string, string][] = [
  ["delivery_rate", "Delivery rate", "of sent", "Nothing sent"],
  ["read_rate", "Read rate", "of delivered", "Nothing delivered"],
  ["click_rate", "Click rate", "of delivered", "Nothing delivered"],
  ["response_rate", "Response rate", "of delivered", "Nothing delivered"],
];

export function StatCards({ stats }: { stats: UserStats }) {
  return (
    <>
      <div class="stat-cards">
        {COUNT_NAMES.map(([key, label]) => (
          <Card key={key} label={label} value={formatCount(stats[key])} />
        ))}
      </div>
      <div class="stat-cards rates">
        {RATES.map(([key, label, over, nothing]) => (
          <Card key={key} label={label} value={formatRate(stats[key])} note={stats[key] === null ? nothing : over} />
        ))}
      </div>
    </>
  );
}
