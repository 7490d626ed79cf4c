import { useId } from "preact/hooks";
import { formatCount, formatRate } from "../../components/format";
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

/** A rate's note; a null rate (nothing to divide by) says why there is no figure. */
function rateNote(rate: number | null, over: string, nothing: string): string {
  return rate === null ? nothing : over;
}

export function StatCards({ stats }: { stats: UserStats }) {
  return (
    <>
      <div class="stat-cards">
        <Card label="Sent" value={formatCount(stats.sent)} />
        <Card label="Delivered" value={formatCount(stats.delivered)} />
        <Card label="Read" value={formatCount(stats.read)} />
        <Card label="Clicked" value={formatCount(stats.clicked)} />
        <Card label="Failed" value={formatCount(stats.failed)} />
        <Card label="Responded" value={formatCount(stats.responded)} />
      </div>
      <div class="stat-cards rates">
        <Card
          label="Delivery rate"
          value={formatRate(stats.delivery_rate)}
          note={rateNote(stats.delivery_rate, "of sent", "Nothing sent")}
        />
        <Card
          label="Read rate"
          value={formatRate(stats.read_rate)}
          note={rateNote(stats.read_rate, "of delivered", "Nothing delivered")}
        />
        <Card
          label="Click rate"
          value={formatRate(stats.click_rate)}
          note={rateNote(stats.click_rate, "of delivered", "Nothing delivered")}
        />
        <Card
          label="Response rate"
          value={formatRate(stats.response_rate)}
          note={rateNote(stats.response_rate, "of delivered", "Nothing delivered")}
        />
      </div>
    </>
  );
}
