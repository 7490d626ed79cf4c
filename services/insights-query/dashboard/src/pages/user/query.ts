import { setSearch } from "../../router";

/** The user page's state in the URL query, so a reload or a shared link shows the same view. */
export interface UserQuery {
  window: WindowChoice;
  status: string;
  channel: string;
  template: string;
  from: string;
  to: string;
}

export type WindowChoice = "7" | "30" | "90" | "all";

export const WINDOWS: { value: WindowChoice; label: string; days: number }[] = [
  { value: "7", label: "7 days", days: 7 },
  { value: "30", label: "30 days", days: 30 },
  { value: "90", label: "90 days", days: 90 },
  // The statistics span at most 366 days per request, so "All" is the longest window allowed.
  { value: "all", label: "All", days: 366 },
];

/** The API's own default window (no since/until) is 30 days. */
const DEFAULT_WINDOW: WindowChoice = "30";

export function readUserQuery(search: URLSearchParams): UserQuery {
  const chosen = search.get("window");
  const known = WINDOWS.find((option) => option.value === chosen);
  return {
    window: known ? known.value : DEFAULT_WINDOW,
    status: search.get("status") ?? "",
    channel: search.get("channel") ?? "",
    template: search.get("template") ?? "",
    from: search.get("from") ?? "",
    to: search.get("to") ?? "",
  };
}

/** Writes the query back, dropping defaults and blanks so plain links stay plain. */
export function writeUserQuery(query: UserQuery): void {
  setSearch({
    window: query.window === DEFAULT_WINDOW ? null : query.window,
    status: query.status,
    channel: query.channel,
    template: query.template,
    from: query.from,
    to: query.to,
  });
}

/** The `since` of a window of `days` UTC days ending today, as the API counts days. */
export function windowSince(choice: WindowChoice, today: Date = new Date()): string {
  const days = WINDOWS.find((option) => option.value === choice)?.days ?? 30;
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (days - 1)));
  return start.toISOString().slice(0, 10);
}

/** The message-list filters as API query parameters. */
export function messageFilters(query: UserQuery): Record<string, string> {
  const filters: Record<string, string> = {};
  if (query.status) filters["status"] = query.status;
  if (query.channel) filters["channel"] = query.channel;
  if (query.template) filters["template"] = query.template;
  if (query.from) filters["since"] = query.from;
  if (query.to) filters["until"] = query.to;
  return filters;
}

export function hasFilters(query: UserQuery): boolean {
  return Object.keys(messageFilters(query)).length > 0;
}
