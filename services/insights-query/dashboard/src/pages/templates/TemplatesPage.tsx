import { api } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { formatCount } from "../../components/format";
import { Loading } from "../../components/Loading";
import { Pager, useCursorPages } from "../../components/Pager";
import { type Column, Table } from "../../components/Table";
import { usePageTitle } from "../../components/usePageTitle";
import { Link, segment } from "../../router";
import type { TemplateSummary } from "../../types";
import { useResource } from "../../useResource";
import "./templates.css";

const PAGE_SIZE = 50;

const COLUMNS: Column<TemplateSummary>[] = [
  {
    header: "Key",
    cell: (row) => <Link href={`/templates/${segment(row.key)}`}>{row.key}</Link>,
    className: "nowrap",
  },
  { header: "Name", cell: (row) => row.name, className: "wrap" },
  { header: "Latest version", cell: (row) => row.latest_version, kind: "num" },
  { header: "Sent", cell: (row) => formatCount(row.sent), kind: "num" },
  { header: "Read", cell: (row) => formatCount(row.read), kind: "num" },
  { header: "Clicked", cell: (row) => formatCount(row.clicked), kind: "num" },
];

/** The app's template catalog with the messages sent with each template. */
export function TemplatesPage() {
  usePageTitle("Templates");
  const pages = useCursorPages();
  const list = useResource((signal) => api.templates({ limit: PAGE_SIZE, cursor: pages.cursor }, signal), [pages.cursor]);

  return (
    <section>
      <h1>Templates</h1>
      <p class="hint templates-intro">
        Every template the messaging platform has used, with the messages sent with any of its versions.
      </p>
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {list.loading && <Loading />}
      {list.data &&
        (list.data.items.length === 0 && !pages.hasPrevious ? (
          <Empty>
            <p>No templates yet.</p>
            <p>Templates appear here when the messaging platform sends its first message or template change.</p>
          </Empty>
        ) : (
          <>
            <Table caption="Templates" hideCaption columns={COLUMNS} rows={list.data.items} rowKey={(row) => row.key} />
            <Pager pages={pages} nextCursor={list.data.next_cursor} />
          </>
        ))}
    </section>
  );
}
