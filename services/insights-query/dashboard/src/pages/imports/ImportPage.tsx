import { ErrorBox } from "../../components/ErrorBox";
import { formatCount } from "../../components/format";
import { Loading } from "../../components/Loading";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import { Link } from "../../router";
import type { ImportJob } from "../../types";
import { failureReason, isFinished, useImportJob } from "./importJob";
import { DownloadReport, ImportCounts, ImportWarnings, RejectedRows } from "./ImportReport";

const MODES: Record<string, string> = {
  upsert: "Create and update (upsert)",
  insert_only: "Create only",
  update_only: "Update only",
};

function Facts({ job }: { job: ImportJob }) {
  return (
    <dl class="facts">
      <dt>Status</dt>
      <dd>
        <StatusBadge status={job.status} />
      </dd>
      <dt>Import ID</dt>
      <dd>
        <code>{job.id}</code>
      </dd>
      <dt>Mode</dt>
      <dd>{MODES[job.mode] ?? job.mode}</dd>
      <dt>Invalid rows</dt>
      <dd>{job.on_error === "reject_file" ? "Reject the whole file" : "Skipped"}</dd>
      {job.dry_run && (
        <>
          <dt>Dry run</dt>
          <dd>Yes: checked only, nothing was saved</dd>
        </>
      )}
      <dt>Rows</dt>
      <dd>{formatCount(job.total_rows)}</dd>
      <dt>Started</dt>
      <dd>
        <Time value={job.created_at} seconds />
      </dd>
      {job.published_at && (
        <>
          <dt>Published</dt>
          <dd>
            <Time value={job.published_at} seconds />
          </dd>
          <dt>Findable</dt>
          <dd>{job.visible_at ? <Time value={job.visible_at} seconds /> : "Not yet: the users are being indexed"}</dd>
        </>
      )}
      <dt>Finished</dt>
      <dd>
        <Time value={job.finished_at} seconds />
      </dd>
    </dl>
  );
}

export function ImportPage({ importId }: { importId: string }) {
  const { job, error } = useImportJob(importId);
  usePageTitle(job ? `Import of ${job.filename}` : "Import");
  return (
    <section>
      <p class="breadcrumb">
        <Link href="/imports">Imports</Link>
      </p>
      {error ? (
        <>
          <h1>Import {importId}</h1>
          <ErrorBox error={error} />
        </>
      ) : !job ? (
        <>
          <h1>Import {importId}</h1>
          <Loading />
        </>
      ) : (
        <>
          <h1>{job.filename || job.id}</h1>
          <Facts job={job} />
          {!isFinished(job) && (
            <p>
              <progress aria-label="Import progress" max={1} value={job.progress} /> {Math.round(job.progress * 100)}%
            </p>
          )}
          {(job.status === "rejected" || job.status === "failed") && (
            <div role="alert" class="error-box">
              <p class="error-title">{job.status === "rejected" ? "The file was rejected" : "The import failed"}</p>
              <p>{failureReason(job)}</p>
            </div>
          )}
          <ImportCounts job={job} />
          <ImportWarnings job={job} />
          {isFinished(job) && (
            <>
              <RejectedRows importId={job.id} />
              <p>
                <DownloadReport importId={job.id} />
              </p>
            </>
          )}
        </>
      )}
    </section>
  );
}
