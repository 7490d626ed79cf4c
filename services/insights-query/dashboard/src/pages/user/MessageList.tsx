import type { HTMLAttributes, TargetedMouseEvent } from "preact";
import { useState } from "preact/hooks";
import { api, apiUrl } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { channelLabel } from "../../components/format";
import { Loading } from "../../components/Loading";
import { Pager, useCursorPages } from "../../components/Pager";
import { StatusBadge } from "../../components/StatusBadge";
import { type Column, Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { Link, navigate, segment } from "../../router";
import type { MessageItem } from "../../types";
import { useResource } from "../../useResource";
import { MessageFilters } from "./MessageFilters";
import { hasFilters, messageFilters, type UserQuery } from "./query";

const PAGE_SIZE = 20;

function messageHref(userId: string, item: MessageItem): string {
  return `/users/${segment(userId)}/messages/${segment(item.message_id)}`;
}

/** The list's columns; a message opens as one of the user's (`messageHref`). */
const columns = (userId: string): Column<MessageItem>[] => [
  {
    header: "Message",
    cell: (item) => (
      <>
        <Link href={messageHref(userId, item)} class="message-link">
          {item.title || item.template.name || item.template.key}
        </Link>
        {item.body_preview && <span class="message-preview">{item.body_preview}</span>}
      </>
    ),
    className: "wrap",
  },
  {
    header: "Status",
    cell: (item) => (
      <>
        <StatusBadge status={item.status} />
        {item.failure && <span class="message-failure">{item.failure.code}</span>}
      </>
    ),
  },
  { header: "Channel", cell: (item) => channelLabel(item.channel), className: "nowrap" },
  { header: "Sent", cell: (item) => <Time value={item.sent_at} />, className: "nowrap" },
  {
    header: "Template",
    cell: (item) => (
      <>
        {item.template.name || item.template.key} <span class="muted">v{item.template.version}</span>
      </>
    ),
  },
];

/** A click anywhere on a row opens the message, as its link does for the keyboard. */
function rowProps(userId: string, item: MessageItem): HTMLAttributes<HTMLTableRowElement> {
  return {
    class: "clickable-row",
    onClick: (event) => {
      const target = event.target as Element | null;
      if (target?.closest("a, button, input, select") || window.getSelection()?.toString()) return;
      navigate(messageHref(userId, item));
    },
  };
}

function Results({ userId, query }: { userId: string; query: UserQuery }) {
  const pages = useCursorPages();
  const filters = messageFilters(query);
  const list = useResource(
    (signal) => api.userMessages(userId, { ...filters, limit: PAGE_SIZE, cursor: pages.cursor }, signal),
    [userId, JSON.stringify(filters), pages.cursor],
  );

  if (list.error) return <ErrorBox error={list.error} onRetry={list.reload} />;
  if (!list.data) return <Loading />;
  const { items, next_cursor } = list.data;
  return (
    <div aria-busy={list.loading}>
      {list.loading && <Loading />}
      {items.length === 0 ? (
        <Empty>
          {hasFilters(query) ? (
            <p>No messages match these filters.</p>
          ) : (
            <p>No messages have been sent to this user yet.</p>
          )}
        </Empty>
      ) : (
        <Table
          caption="Message list"
          hideCaption
          columns={columns(userId)}
          rows={items}
          rowKey={(item) => item.message_id}
          rowProps={(item) => rowProps(userId, item)}
        />
      )}
      <Pager pages={pages} nextCursor={next_cursor} />
    </div>
  );
}

function ExportLink({ userId, query }: { userId: string; query: UserQuery }) {
  const [state, setState] = useState<{ busy: boolean; error: unknown }>({ busy: false, error: null });
  const filters = messageFilters(query);
  // The API needs the bearer key, which a plain link cannot send: fetch, then save the file.
  const save = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    event.preventDefault();
    if (state.busy) return;
    setState({ busy: true, error: null });
    api.exportUserMessages(userId, filters).then(
      () => setState({ busy: false, error: null }),
      (error: unknown) => setState({ busy: false, error }),
    );
  };
  return (
    <div class="export">
      <a
        class="button secondary"
        href={apiUrl(`/users/${segment(userId)}/messages`, { ...filters, format: "csv" })}
        onClick={save}
        aria-disabled={state.busy}
      >
        Export CSV
      </a>
      {state.busy && (
        <span role="status" class="muted">
          Preparing the file…
        </span>
      )}
      {state.error !== null && <ErrorBox error={state.error} />}
    </div>
  );
}

interface MessageListProps {
  userId: string;
  query: UserQuery;
  onChange: (changes: Partial<UserQuery>) => void;
}

/** The user's messages, newest first, filtered by the URL query, a cursor page at a time. */
export function MessageList({ userId, query, onChange }: MessageListProps) {
  return (
    <section aria-labelledby="messages-heading">
      <div class="section-head">
        <h2 id="messages-heading">Messages</h2>
        <ExportLink userId={userId} query={query} />
      </div>
      <MessageFilters query={query} onChange={onChange} />
      {/* New filters start again at the first page. */}
      <Results key={JSON.stringify(messageFilters(query))} userId={userId} query={query} />
    </section>
  );
}
