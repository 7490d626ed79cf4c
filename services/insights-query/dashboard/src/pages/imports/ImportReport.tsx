import { useId, useState } from "preact/hooks";
import { api, apiUrl } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { formatCount } from "../../components/format";
import { Loading } from "../../components/Loading";
import { Pager, useCursorPages } from "../../components/Pager";
import { type Column, Table } from "../../components/Table";
import { useResource } from "../../useResource";
import type { ImportJob, RejectedRow } from "../../types";

function Count({ label, value }: { label: string; value: number }) {
  const id = useId();
  return (
    <div>
      <dt id={id}>{label}</dt>
      <dd aria-labelledby={id}>{formatCount(value)}</dd>
    </div>
  );
}

export function ImportCounts({ job }: { job: ImportJob }) {
  return (
    <dl class="counts">
      <Count label="Created" value={job.created} />
      <Count label="Updated" value={job.updated} />
      <Count label="Unchanged" value={job.unchanged} />
      <Count label="Rejected" value={job.rejected} />
    </dl>
  );
}

/** The file-level warnings (e.g. ignored columns) of an import. */
export function ImportWarnings({ job }: { job: ImportJob }) {
  if (job.warnings.length === 0) return null;
  return (
    <div class="notice">
      {job.warnings.map((warning) => (
        <p key={warning.code}>{warning.line ? `Line ${warning.line}: ${warning.message}` : warning.message}</p>
      ))}
    </div>
  );
}

/** A link to the CSV report; fetched with the key, since a plain link cannot send it. */
export function DownloadReport({ importId }: { importId: string }) {
  const [error, setError] = useState<unknown>(null);
  const save = (event: Event) => {
    event.preventDefault();
    setError(null);
    api.downloadImportReport(importId).catch(setError);
  };
  return (
    <>
      <a href={apiUrl(`/imports/${encodeURIComponent(importId)}/errors`, { format: "csv" })} onClick={save}>
        Download report
      </a>
      {error !== null && <ErrorBox error={error} />}
    </>
  );
}

const COLUMNS: Column<RejectedRow>[] = [
  { header: "Line", cell: (row) => row.line, kind: "num" },
  { header: "User ID", cell: (row) => row.user_id ?? "", className: "nowrap" },
  { header: "Column", cell: (row) => row.column ?? "", className: "nowrap" },
  { header: "Message", cell: (row) => row.message, className: "wrap" },
];

/** The rejected rows of an import, a page at a time. */
export function RejectedRows({ importId, pageSize = 50 }: { importId: string; pageSize?: number }) {
  const pages = useCursorPages();
  const rows = useResource(
    (signal) => api.importErrors(importId, { limit: pageSize, cursor: pages.cursor }, signal),
    [importId, pages.cursor, pageSize],
  );
  if (rows.error) return <ErrorBox error={rows.error} onRetry={rows.reload} />;
  if (!rows.data) return <Loading />;
  if (rows.data.items.length === 0 && !pages.hasPrevious) return <Empty>No rows were rejected.</Empty>;
  return (
    <>
      <Table caption="Rejected rows" columns={COLUMNS} rows={rows.data.items} rowKey={(row) => `${row.line}:${row.column ?? ""}:${row.code}`} />
      <Pager pages={pages} nextCursor={rows.data.next_cursor} />
    </>
  );
}
