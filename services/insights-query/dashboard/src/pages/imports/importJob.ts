import { useEffect, useState } from "preact/hooks";
import { api, isAbort } from "../../api";
import type { ImportJob, ImportStatus } from "../../types";

const POLL_MS = 500;
const FINISHED: ImportStatus[] = ["completed", "rejected", "failed"];

export function isFinished(job: ImportJob): boolean {
  return FINISHED.includes(job.status);
}

/** Why an import ended without importing: its first file-level error, else its status. */
export function failureReason(job: ImportJob): string {
  const first = job.errors[0];
  if (first) return first.line ? `Line ${first.line}: ${first.message}` : first.message;
  return job.status === "rejected" ? "The file was rejected." : "The import failed.";
}

/** Waits for an import to finish, asking the API for its progress every half second. */
export async function pollImport(
  importId: string,
  onUpdate: (job: ImportJob) => void,
  signal: AbortSignal,
): Promise<ImportJob> {
  for (;;) {
    const job = await api.importJob(importId, signal);
    onUpdate(job);
    if (isFinished(job)) return job;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, POLL_MS);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new DOMException("Stopped waiting for the import.", "AbortError"));
      });
    });
  }
}

/** One import, kept up to date until it finishes. */
export function useImportJob(importId: string): { job: ImportJob | null; error: unknown } {
  const [job, setJob] = useState<ImportJob | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const controller = new AbortController();
    setJob(null);
    setError(null);
    pollImport(importId, setJob, controller.signal).catch((caught: unknown) => {
      if (!isAbort(caught) && !controller.signal.aborted) setError(caught);
    });
    return () => controller.abort();
  }, [importId]);
  return { job, error };
}
