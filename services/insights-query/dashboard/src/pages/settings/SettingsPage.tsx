import { useState } from "preact/hooks";
import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { Loading } from "../../components/Loading";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import { useResource } from "../../useResource";

const MAX_DAYS = 36500;

interface RetentionFormProps {
  /** The stored number of days, or null when every message is kept (or before it has loaded). */
  stored: number | null;
  saving: boolean;
  onSave: (days: number | null) => Promise<void>;
}

function RetentionForm({ stored, saving, onSave }: RetentionFormProps) {
  const [days, setDays] = useState(stored === null ? "" : String(stored));
  const submit = (event: Event) => {
    event.preventDefault();
    // Sent as typed: the API says what is wrong with a value it cannot take (0, 1.5, too many).
    void onSave(Number(days));
  };
  return (
    <form class="filters" onSubmit={submit}>
      <label for="retention-days">Keep messages for (days)</label>
      <input
        id="retention-days"
        type="number"
        min={1}
        max={MAX_DAYS}
        step={1}
        required
        value={days}
        onInput={(e) => setDays(e.currentTarget.value)}
      />
      <button type="submit" class="button primary" disabled={saving}>
        Save retention
      </button>
      {stored !== null && (
        <button type="button" class="button secondary" disabled={saving} onClick={() => void onSave(null)}>
          Keep every message
        </button>
      )}
    </form>
  );
}

/** How long the app keeps its messages: view, set, or turn off (admins only). */
function RetentionSection() {
  const retention = useResource((signal) => api.retention(signal), []);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const current = retention.data;

  const save = async (value: number | null) => {
    setError(null);
    setSaved(null);
    setSaving(true);
    try {
      const changed = await api.setRetention(value);
      setSaved(
        changed?.days == null
          ? "Every message is kept."
          : `Messages sent more than ${changed.days} days ago are being removed now, in the background, and every hour from now on.`,
      );
      retention.reload();
    } catch (failure) {
      setError(failure);
    } finally {
      setSaving(false);
    }
  };

  return (
    <section aria-labelledby="retention-heading">
      <h2 id="retention-heading">Message retention</h2>
      {retention.error !== null && <ErrorBox error={retention.error} onRetry={retention.reload} />}
      {retention.loading && <Loading />}
      {current && (
        <p data-testid="retention-current">
          {current.days === null ? (
            "Every message is kept."
          ) : (
            <>
              Messages sent more than <strong>{current.days} days</strong> ago are removed (set{" "}
              <Time value={current.updated_at ?? ""} />
              ).
            </>
          )}
        </p>
      )}
      {/* Mounted anew with each stored value, so the field shows it from the first render on and
          nothing typed after the page has loaded is overwritten by a late update. */}
      <RetentionForm
        key={current ? `${current.days}/${current.updated_at}` : "loading"}
        stored={current?.days ?? null}
        saving={saving}
        onSave={save}
      />
      <p class="muted">
        Removed messages leave every list, count and statistic; users who were imported stay. The removal runs in
        small steps, so searches keep answering meanwhile. Changes are recorded in the audit trail.
      </p>
      {saved && (
        <p role="status" class="notice">
          {saved}
        </p>
      )}
      {error !== null && <ErrorBox error={error} />}
    </section>
  );
}

export function SettingsPage() {
  usePageTitle("Settings");
  return (
    <section>
      <h1>Settings</h1>
      <RetentionSection />
    </section>
  );
}
