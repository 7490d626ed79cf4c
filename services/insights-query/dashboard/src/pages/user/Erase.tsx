import { useState } from "preact/hooks";
import { api } from "../../api";
import { ProblemText } from "../../components/ErrorBox";

/** An admin's "Erase user": typing the user id confirms it; then nothing of the user is left. */
export function Erase({ userId, onErased }: { userId: string; onErased: () => void }) {
  const [asking, setAsking] = useState(false);
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!asking) {
    return (
      <section class="erase" aria-labelledby="erase-heading">
        <h2 id="erase-heading">Erase</h2>
        <p class="hint">
          Removes this user's profile, messages and import records everywhere. Events about them sent before now are
          ignored; importing them again makes a new user. The audit trail keeps that you erased them.
        </p>
        <button type="button" class="button danger" onClick={() => setAsking(true)}>
          Erase user
        </button>
      </section>
    );
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await api.eraseUser(userId);
      onErased();
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <section class="erase" aria-labelledby="erase-heading">
      <h2 id="erase-heading">Erase</h2>
      <form class="erase-form" onSubmit={submit}>
        <label for="erase-confirm">
          This cannot be undone. Type <strong>{userId}</strong> to erase this user.
        </label>
        <input id="erase-confirm" value={typed} autocomplete="off" onInput={(e) => setTyped(e.currentTarget.value)} />
        <button type="submit" class="button danger" disabled={busy || typed !== userId}>
          Erase {userId}
        </button>
        <button type="button" class="button secondary" onClick={() => setAsking(false)}>
          Cancel
        </button>
        {error !== null && (
          <p role="alert" class="error-box">
            <ProblemText error={error} />
          </p>
        )}
      </form>
    </section>
  );
}
