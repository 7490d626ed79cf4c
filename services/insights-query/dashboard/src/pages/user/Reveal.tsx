import { useState } from "preact/hooks";
import { api } from "../../api";
import { ProblemText } from "../../components/ErrorBox";

/** The Reveal button beside a masked phone: asks why, then shows the whole number (recorded). */
export function Reveal({ userId }: { userId: string }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const [phone, setPhone] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  if (phone) return <span class="phone revealed">{phone}</span>;
  if (!asking) {
    return (
      <button type="button" class="button secondary reveal" onClick={() => setAsking(true)}>
        Reveal
      </button>
    );
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const answer = await api.revealPhone(userId, reason.trim());
      setPhone(answer?.phone_number ?? "No phone number");
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <form class="reveal-form" onSubmit={submit}>
      <label for="reveal-reason">Why do you need the whole number? (recorded)</label>
      <input id="reveal-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} minLength={3} />
      <button type="submit" class="button primary" disabled={reason.trim().length < 3}>
        Show number
      </button>
      {error !== null && (
        <p role="alert" class="error-box">
          <ProblemText error={error} />
        </p>
      )}
    </form>
  );
}
