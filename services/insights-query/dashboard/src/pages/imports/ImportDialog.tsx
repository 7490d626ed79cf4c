import { useEffect, useRef, useState } from "preact/hooks";
import { api, isAbort } from "../../api";
import { ProblemText } from "../../components/ErrorBox";
import { formatBytes } from "../../components/format";
import type { ImportJob, ImportMode, OnError } from "../../types";
import { failureReason, isFinished, pollImport } from "./importJob";
import { DownloadReport, ImportCounts, ImportWarnings, RejectedRows } from "./ImportReport";
import { ImportOptions } from "./ImportOptions";

type Phase = "choose" | "uploading" | "importing" | "finished" | "refused";

interface Props {
  /** Called when the dialog closes, with the import it started (if any). */
  onClose: (job: ImportJob | null) => void;
}

function ImportState({ phase, job, upload }: { phase: Phase; job: ImportJob | null; upload: number }) {
  if (phase === "uploading") return <span class="file-state">Uploading… {Math.round(upload * 100)}%</span>;
  if (phase === "importing") {
    const label =
      job?.status === "validating"
        ? "Validating"
        : job?.status === "queued"
          ? "Queued"
          : job?.published_at
            ? "Making the users findable"
            : "Importing";
    return (
      <span class="file-state">
        {label}… {Math.round((job?.progress ?? 0) * 100)}%
      </span>
    );
  }
  if (phase === "finished" && job?.status === "completed") {
    return (
      <span class="file-state ok">
        <span aria-hidden="true">✓ </span>
        {job.dry_run ? "Checked (dry run, nothing saved)" : "Imported"}
      </span>
    );
  }
  return <span class="file-state bad">Failed</span>;
}

/** Upload first (the first third of the bar), then the import's own progress. */
function overallProgress(phase: Phase, upload: number, job: ImportJob | null): number {
  if (phase === "uploading") return upload / 3;
  if (phase === "importing") return 1 / 3 + ((job?.progress ?? 0) * 2) / 3;
  return 1;
}

export function ImportDialog({ onClose }: Props) {
  const dialogRef = useRef<HTMLDialogElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const controller = useRef<AbortController | null>(null);
  const [mode, setMode] = useState<ImportMode>("upsert");
  const [onError, setOnError] = useState<OnError>("skip_rows");
  const [dryRun, setDryRun] = useState(false);
  const [file, setFile] = useState<File | null>(null);
  const [phase, setPhase] = useState<Phase>("choose");
  const [upload, setUpload] = useState(0);
  const [job, setJob] = useState<ImportJob | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  const [dragging, setDragging] = useState(false);
  const jobRef = useRef<ImportJob | null>(null);
  jobRef.current = job;

  useEffect(() => {
    const dialog = dialogRef.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => controller.current?.abort();
  }, []);

  const close = () => {
    controller.current?.abort();
    dialogRef.current?.close();
    onClose(jobRef.current);
  };

  const start = async (chosen: File) => {
    const run = new AbortController();
    controller.current?.abort();
    controller.current = run;
    setFile(chosen);
    setJob(null);
    setProblem(null);
    setUpload(0);
    setPhase("uploading");
    try {
      const accepted = await api.startImport(chosen, { mode, onError, dryRun }, setUpload, run.signal);
      setJob(accepted);
      setPhase("importing");
      const done = isFinished(accepted) ? accepted : await pollImport(accepted.id, setJob, run.signal);
      setJob(done);
      setPhase("finished");
    } catch (caught) {
      if (isAbort(caught) || run.signal.aborted) return;
      setProblem(caught);
      setPhase("refused");
    }
  };

  const choose = (files: FileList | null | undefined) => {
    const chosen = files?.[0];
    if (chosen) void start(chosen);
  };

  const busy = phase === "uploading" || phase === "importing";
  const failed = phase === "refused" || (phase === "finished" && job !== null && job.status !== "completed");

  return (
    <dialog
      ref={dialogRef}
      class="modal"
      aria-labelledby="import-title"
      onCancel={(event) => {
        event.preventDefault();
        close();
      }}
    >
      <div class="modal-body">
        <h2 id="import-title">Import users</h2>
        <ul class="requirements">
          <li>
            A CSV file whose first row names the columns <code>user_id</code> and <code>phone_number</code> (
            <code>nickname</code> is optional).
          </li>
          <li>At most 100,000 users per file.</li>
          <li>
            <code>user_id</code>: letters, digits, underscores, hyphens and periods; 1–80 characters.
          </li>
          <li>
            <code>phone_number</code> in E.164: <code>+</code>, country code, number, e.g. <code>+14155550171</code>.
          </li>
        </ul>

        <ImportOptions
          disabled={busy}
          mode={mode}
          onError={onError}
          dryRun={dryRun}
          onMode={setMode}
          onOnError={setOnError}
          onDryRun={setDryRun}
        />

        <div
          class={`dropzone${dragging ? " dragging" : ""}`}
          role="group"
          aria-label="Attach file"
          onDragEnter={(event) => {
            event.preventDefault();
            if (!busy) setDragging(true);
          }}
          onDragOver={(event) => {
            event.preventDefault();
            if (event.dataTransfer) event.dataTransfer.dropEffect = busy ? "none" : "copy";
          }}
          onDragLeave={(event) => {
            if (!event.currentTarget.contains(event.relatedTarget as Node | null)) setDragging(false);
          }}
          onDrop={(event) => {
            event.preventDefault();
            setDragging(false);
            if (!busy) choose(event.dataTransfer?.files);
          }}
        >
          <p>Drag a CSV file here, or</p>
          <button type="button" class="button secondary" disabled={busy} onClick={() => inputRef.current?.click()}>
            Upload CSV file
          </button>
          <input
            ref={inputRef}
            class="visually-hidden"
            type="file"
            accept=".csv,text/csv"
            aria-label="CSV file"
            tabIndex={-1}
            disabled={busy}
            onChange={(event) => {
              choose(event.currentTarget.files);
              event.currentTarget.value = "";
            }}
          />
        </div>

        {file && (
          <div class="file-row">
            <span class="file-name">
              {file.name} <span class="muted">({formatBytes(file.size)})</span>
            </span>
            <ImportState phase={phase} job={job} upload={upload} />
            {busy && (
              <progress
                aria-label="Import progress"
                max={1}
                value={overallProgress(phase, upload, job)}
                aria-valuetext={phase === "uploading" ? `Uploading, ${Math.round(upload * 100)}%` : `Importing, ${Math.round((job?.progress ?? 0) * 100)}%`}
              />
            )}
            {failed && (
              <div role="alert" class="error-box">
                {phase === "refused" ? <ProblemText error={problem} /> : job && <p>{failureReason(job)}</p>}
              </div>
            )}
          </div>
        )}

        {phase === "finished" && job && (
          <>
            <ImportCounts job={job} />
            <ImportWarnings job={job} />
            {job.rejected > 0 && <RejectedRows importId={job.id} pageSize={20} />}
            <p>
              <DownloadReport importId={job.id} />
            </p>
          </>
        )}

        <div class="modal-actions">
          {file ? (
            <button type="button" class="button primary" onClick={close}>
              Ok
            </button>
          ) : (
            <button type="button" class="button secondary" onClick={close}>
              Cancel
            </button>
          )}
        </div>
      </div>
    </dialog>
  );
}
