import { ApiError } from "../api";

function describe(error: unknown): { title: string; detail: string | null; notes: string[] } {
  if (error instanceof ApiError) {
    const notes = error.errors
      .map((e) => {
        const where = e.loc && e.loc.length ? `${e.loc.filter((p) => p !== "query").join(".")}: ` : "";
        const allowed = e.allowed?.length ? ` (allowed: ${e.allowed.join(", ")})` : "";
        return e.message ? `${where}${e.message}${allowed}` : "";
      })
      .filter(Boolean);
    return { title: error.title, detail: error.detail, notes };
  }
  if (error instanceof Error) return { title: "Something went wrong", detail: error.message, notes: [] };
  return { title: "Something went wrong", detail: null, notes: [] };
}

/** The problem's title, detail and each invalid parameter, for use inside an alert. */
export function ProblemText({ error }: { error: unknown }) {
  const { title, detail, notes } = describe(error);
  return (
    <>
      <p class="error-title">{title}</p>
      {detail && <p>{detail}</p>}
      {notes.length > 1 && (
        <ul>
          {notes.map((note) => (
            <li key={note}>{note}</li>
          ))}
        </ul>
      )}
    </>
  );
}

/** Whether asking again can help: a network failure, an overloaded or failing server. A bad
 * parameter, a refused key or a missing resource answers the same the next time. */
function retryable(error: unknown): boolean {
  return !(error instanceof ApiError) || error.status === 429 || error.status >= 500;
}

/** The API's problem as an alert. */
export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  return (
    <div role="alert" class="error-box">
      <ProblemText error={error} />
      {onRetry && retryable(error) && (
        <button type="button" class="button secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
