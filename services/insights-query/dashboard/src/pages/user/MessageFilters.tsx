import { useId } from "preact/hooks";
import { api } from "../../api";
import { channelLabel, statusLabel } from "../../components/format";
import type { Channel, MessageStatus, TemplateSummary } from "../../types";
import { useResource } from "../../useResource";
import { hasFilters, type UserQuery } from "./query";

const STATUSES: MessageStatus[] = ["sent", "delivered", "read", "clicked", "failed"];
const CHANNELS: Channel[] = ["push", "in_app", "sms", "email", "alimtalk", "whatsapp"];
/** The catalog page read for the Template choices; the API's largest page. */
const CATALOG_PAGE = 200;

interface FiltersProps {
  query: UserQuery;
  onChange: (changes: Partial<UserQuery>) => void;
}

/** Status, Channel, Template, From and To; each change updates the URL query at once. */
export function MessageFilters({ query, onChange }: FiltersProps) {
  const hintId = useId();
  const catalog = useResource((signal) => api.templates({ limit: CATALOG_PAGE }, signal), []);
  const templates: Pick<TemplateSummary, "key" | "name">[] = catalog.data?.items ?? [];
  const known = templates.some((template) => template.key === query.template);
  const choices = query.template && !known ? [...templates, { key: query.template, name: "" }] : templates;

  return (
    <form class="message-filters" onSubmit={(event) => event.preventDefault()} aria-label="Message filters">
      <div class="filter">
        <label for="filter-status">Status</label>
        <select id="filter-status" value={query.status} onChange={(e) => onChange({ status: e.currentTarget.value })}>
          <option value="">Any status</option>
          {STATUSES.map((status) => (
            <option key={status} value={status}>
              {statusLabel(status)}
            </option>
          ))}
        </select>
      </div>
      <div class="filter">
        <label for="filter-channel">Channel</label>
        <select id="filter-channel" value={query.channel} onChange={(e) => onChange({ channel: e.currentTarget.value })}>
          <option value="">Any channel</option>
          {CHANNELS.map((channel) => (
            <option key={channel} value={channel}>
              {channelLabel(channel)}
            </option>
          ))}
        </select>
      </div>
      <div class="filter filter-template">
        <label for="filter-template">Template</label>
        <select
          id="filter-template"
          value={query.template}
          onChange={(e) => onChange({ template: e.currentTarget.value })}
        >
          <option value="">Any template</option>
          {choices.map((template) => (
            <option key={template.key} value={template.key}>
              {template.name ? `${template.name} (${template.key})` : template.key}
            </option>
          ))}
        </select>
      </div>
      <div class="filter">
        <label for="filter-from">From</label>
        <input
          id="filter-from"
          type="date"
          value={query.from}
          max={query.to || undefined}
          aria-describedby={hintId}
          onChange={(e) => onChange({ from: e.currentTarget.value })}
        />
      </div>
      <div class="filter">
        <label for="filter-to">To</label>
        <input
          id="filter-to"
          type="date"
          value={query.to}
          min={query.from || undefined}
          aria-describedby={hintId}
          onChange={(e) => onChange({ to: e.currentTarget.value })}
        />
      </div>
      <div class="filter filter-actions">
        <button
          type="button"
          class="button secondary"
          disabled={!hasFilters(query)}
          onClick={() => onChange({ status: "", channel: "", template: "", from: "", to: "" })}
        >
          Clear filters
        </button>
      </div>
      <p id={hintId} class="hint filter-hint">
        From and To are whole UTC days, both included.
      </p>
    </form>
  );
}
