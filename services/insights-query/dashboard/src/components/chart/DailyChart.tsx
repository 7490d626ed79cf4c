import { formatCount, formatDay } from "../format";
import { Table } from "../Table";
import { countTicks, labelEvery, niceMax } from "./scale";
import { useWidth } from "./useWidth";
import "./chart.css";

export interface DayCounts {
  date: string;
  sent: number;
  read: number;
  clicked: number;
}

interface DailyChartProps {
  /** The chart's accessible name, given by its SVG <title>. */
  label: string;
  days: DayCounts[];
}

const HEIGHT = 240;
const MARGIN = { top: 12, right: 12, bottom: 48, left: 44 };
/** Room for a day label ("Nov 28") each side of its day, and between two labels. */
const HALF_LABEL = 22;
const LABEL_SPACING = 64;
const shortDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

function dayLabel(date: string): string {
  const moment = new Date(`${date}T00:00:00Z`);
  return Number.isNaN(moment.getTime()) ? date : shortDay.format(moment);
}

function describe(days: DayCounts[]): string {
  const first = days[0];
  const last = days[days.length - 1];
  if (!first || !last) return "No days in this window.";
  const total = (pick: (day: DayCounts) => number) => days.reduce((sum, day) => sum + pick(day), 0);
  const sent = total((day) => day.sent);
  const span = `From ${formatDay(first.date)} to ${formatDay(last.date)} (UTC days)`;
  if (sent === 0) return `${span}: no messages were sent.`;
  const busiest = days.reduce((best, day) => (day.sent > best.sent ? day : best), first);
  return (
    `${span}: ${formatCount(sent)} sent, ${formatCount(total((day) => day.read))} read, ` +
    `${formatCount(total((day) => day.clicked))} clicked. Busiest day ${formatDay(busiest.date)} ` +
    `with ${formatCount(busiest.sent)} sent.`
  );
}

function linePath(points: [number, number][]): string {
  return points.map(([x, y], index) => `${index === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
}

/**
 * Sent (bars), read (solid line, circles) and clicked (dashed line, squares) per UTC day, in
 * plain SVG. Shapes and dashes tell the series apart without relying on colour; screen readers
 * get the name, a summary in <desc>, and the same numbers as a table behind "Show as table".
 */
export function DailyChart({ label, days }: DailyChartProps) {
  const [ref, width] = useWidth<HTMLDivElement>(640);

  const plotWidth = Math.max(120, width - MARGIN.left - MARGIN.right);
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const top = niceMax(Math.max(0, ...days.map((day) => Math.max(day.sent, day.read, day.clicked))));
  const band = plotWidth / Math.max(1, days.length);
  const x = (index: number) => MARGIN.left + band * (index + 0.5);
  const y = (value: number) => MARGIN.top + plotHeight - (value / top) * plotHeight;
  const barWidth = Math.max(1, Math.min(28, band * 0.7));
  const markers = band >= 9;
  const every = labelEvery(days.length, plotWidth, LABEL_SPACING);
  // Count labels back from the last day, so today always has one.
  const labelled = (index: number) => (days.length - 1 - index) % every === 0;
  // A label near either edge of the plot grows inward instead of being cut off.
  const anchor = (at: number) =>
    at + HALF_LABEL > MARGIN.left + plotWidth + MARGIN.right ? "end" : at - HALF_LABEL < 0 ? "start" : "middle";
  const empty = days.every((day) => day.sent === 0 && day.read === 0 && day.clicked === 0);

  return (
    <figure class="daily-chart">
      <div ref={ref} class="daily-chart-canvas">
        {/* Named by its <title> rather than aria-label, so label lookups for the "Sent" card
            do not also find the chart. */}
        <svg role="img" width={width} height={HEIGHT}>
          <title>{label}</title>
          <desc>{describe(days)}</desc>
          <g class="chart-grid">
            {countTicks(top).map((tick) => (
              <g key={tick}>
                <line x1={MARGIN.left} x2={MARGIN.left + plotWidth} y1={y(tick)} y2={y(tick)} />
                <text x={MARGIN.left - 6} y={y(tick)} dy="0.32em" text-anchor="end">
                  {formatCount(tick)}
                </text>
              </g>
            ))}
          </g>
          <g class="chart-x-labels">
            {days.map((day, index) =>
              labelled(index) ? (
                <text key={day.date} x={x(index)} y={MARGIN.top + plotHeight + 16} text-anchor={anchor(x(index))}>
                  {dayLabel(day.date)}
                </text>
              ) : null,
            )}
          </g>
          <text class="chart-axis-title" x={MARGIN.left + plotWidth / 2} y={HEIGHT - 6} text-anchor="middle">
            Day (UTC)
          </text>
          <text
            class="chart-axis-title"
            transform={`translate(12 ${MARGIN.top + plotHeight / 2}) rotate(-90)`}
            text-anchor="middle"
          >
            Messages
          </text>
          <g class="series-sent">
            {days.map((day, index) =>
              day.sent > 0 ? (
                <rect
                  key={day.date}
                  x={x(index) - barWidth / 2}
                  y={y(day.sent)}
                  width={barWidth}
                  height={y(0) - y(day.sent)}
                />
              ) : null,
            )}
          </g>
          {!empty && <Line class="series-read" points={days.map((day, index) => [x(index), y(day.read)])} />}
          {!empty && <Line class="series-clicked" points={days.map((day, index) => [x(index), y(day.clicked)])} />}
          {markers && !empty && (
            <g>
              {days.map((day, index) => (
                <g key={day.date}>
                  <circle class="marker-read" cx={x(index)} cy={y(day.read)} r={3.5} />
                  <rect class="marker-clicked" x={x(index) - 3} y={y(day.clicked) - 3} width={6} height={6} />
                </g>
              ))}
            </g>
          )}
          <line class="chart-axis" x1={MARGIN.left} x2={MARGIN.left + plotWidth} y1={y(0)} y2={y(0)} />
          {empty && (
            <text class="chart-empty" x={MARGIN.left + plotWidth / 2} y={MARGIN.top + plotHeight / 2} text-anchor="middle">
              No messages sent in this window
            </text>
          )}
          <g class="chart-hover">
            {days.map((day, index) => (
              <rect key={day.date} x={MARGIN.left + band * index} y={MARGIN.top} width={band} height={plotHeight}>
                <title>
                  {`${formatDay(day.date)}: ${day.sent} sent, ${day.read} read, ${day.clicked} clicked`}
                </title>
              </rect>
            ))}
          </g>
        </svg>
      </div>
      <figcaption>
        <ul class="chart-legend">
          <li>
            <svg aria-hidden="true" width="18" height="12">
              <rect class="series-sent-swatch" x="3" y="1" width="12" height="11" />
            </svg>
            Sent
          </li>
          <li>
            <svg aria-hidden="true" width="26" height="12">
              <line class="series-read" x1="1" x2="25" y1="6" y2="6" />
              <circle class="marker-read" cx="13" cy="6" r="3.5" />
            </svg>
            Read
          </li>
          <li>
            <svg aria-hidden="true" width="26" height="12">
              <line class="series-clicked" x1="1" x2="25" y1="6" y2="6" />
              <rect class="marker-clicked" x="10" y="3" width="6" height="6" />
            </svg>
            Clicked
          </li>
        </ul>
        <details class="chart-table">
          <summary>Show as table</summary>
          <Table
            caption="Daily counts"
            hideCaption
            columns={[
              { header: "Day (UTC)", cell: (day: DayCounts) => formatDay(day.date), className: "nowrap" },
              { header: "Sent", cell: (day: DayCounts) => formatCount(day.sent), kind: "num" },
              { header: "Read", cell: (day: DayCounts) => formatCount(day.read), kind: "num" },
              { header: "Clicked", cell: (day: DayCounts) => formatCount(day.clicked), kind: "num" },
            ]}
            rows={days}
            rowKey={(day) => day.date}
          />
        </details>
      </figcaption>
    </figure>
  );
}

function Line({ points, class: className }: { points: [number, number][]; class: string }) {
  const path = linePath(points);
  return (
    <g class={className}>
      <path class="line-halo" d={path} />
      <path class="line-stroke" d={path} />
    </g>
  );
}
