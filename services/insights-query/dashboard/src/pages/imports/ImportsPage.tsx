import { useEffect } from "preact/hooks";
import { api } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { formatCount } from "../../components/format";
import { Loading } from "../../components/Loading";
import { Pager, useCursorPages } from "../../components/Pager";
import { StatusBadge } from "../../components/StatusBadge";
import { type Column, Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import { Link, segment } from "../../router";
import type { ImportJob } from "../../types";
import { useResource } from "../../useResource";
import { ImportButton } from "./ImportButton";
import { isFinished } from "./importJob";

const REFRESH_MS = 1500;

const COLUMNS: Column<ImportJob>[] = [
  {
    header: "File",
    cell: (job) => <Link href={`/imports/${segment(job.id)}`}>{job.filename || job.id}</Link>,
    className: "wrap",
  },
  { header: "Status", cell: (job) => <StatusBadge status={job.status} /> },
  { header: "Rows", cell: (job) => formatCount(job.total_rows), kind: "num" },
  { header: "Created", cell: (job) => formatCount(job.created), kind: "num" },
  { header: "Updated", cell: (job) => formatCount(job.updated), kind: "num" },
  { header: "Unchanged", cell: (job) => formatCount(job.unchanged), kind: "num" },
  { header: "Rejected", cell: (job) => formatCount(job.rejected), kind: "num" },
  { header: "Started", cell: (job) => <Time value={job.created_at} />, className: "nowrap" },
];

export function ImportsPage() {
  usePageTitle("Imports");
  const pages = useCursorPages();
  const imports = useResource((signal) => api.imports({ limit: 20, cursor: pages.cursor }, signal), [pages.cursor]);

  // Imports still running move on by themselves; refresh the list until they finish.
  const running = imports.data?.items.some((job) => !isFinished(job)) ?? false;
  useEffect(() => {
    if (!running || imports.loading) return undefined;
    const timer = setTimeout(imports.reload, REFRESH_MS);
    return () => clearTimeout(timer);
  }, [running, imports.loading, imports.data, imports.reload]);

  const onImported = () => {
    pages.reset();
    imports.reload();
  };

  return (
    <section>
      <div class="page-head">
        <h1>Imports</h1>
        <ImportButton onImported={onImported} />
      </div>
      {imports.error ? (
        <ErrorBox error={imports.error} onRetry={imports.reload} />
      ) : !imports.data ? (
        <Loading />
      ) : imports.data.items.length === 0 && !pages.hasPrevious ? (
        <Empty>
          <p>No imports yet.</p>
          <p>Use Import users to add users from a CSV file.</p>
        </Empty>
      ) : (
        <>
          <Table
            caption="Import history"
            hideCaption
            columns={COLUMNS}
            rows={imports.data.items}
            rowKey={(job) => job.id}
          />
          <Pager pages={pages} nextCursor={imports.data.next_cursor} />
        </>
      )}
    </section>
  );
}
