import { useState } from "preact/hooks";
import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { Loading } from "../../components/Loading";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import type { SourceSetting } from "../../types";
import { useResource } from "../../useResource";
import "./sources.css";

/** The callback URL with a button that copies it; the text stays selectable where the browser
 * keeps the clipboard from the page (a plain-http address). */
function CallbackUrl({ source }: { source: SourceSetting }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  const copy = () => {
    const clipboard = navigator.clipboard as Clipboard | undefined;
    if (!clipboard) {
      setCopied("no");
      return;
    }
    clipboard.writeText(source.callback_url).then(
      () => setCopied("yes"),
      () => setCopied("no"),
    );
  };
  return (
    <p class="callback-url">
      <span>Callback URL</span> <code>{source.callback_url}</code>{" "}
      <button type="button" class="button secondary" onClick={copy} aria-label={`Copy the ${source.title} callback URL`}>
        Copy
      </button>
      <span role="status" class="muted">
        {copied === "yes" ? "Copied" : copied === "no" ? "Select the URL and copy it" : ""}
      </span>
    </p>
  );
}

function SourceForm({ source, onSaved }: { source: SourceSetting; onSaved: (token: string | null) => void }) {
  const [secret, setSecret] = useState("");
  const [userField, setUserField] = useState(source.user_field ?? "");
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const ids = { secret: `${source.platform}-secret`, field: `${source.platform}-user-field` };

  const save = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaving(true);
    try {
      const change: { secret?: string; user_field: string | null } = { user_field: userField.trim() || null };
      if (secret || !source.token_made_here) change.secret = secret;
      const saved = await api.setSource(source.platform, change);
      setSecret("");
      onSaved(saved?.token ?? null);
    } catch (failure) {
      setError(failure);
    } finally {
      setSaving(false);
    }
  };
  return (
    <form class="source-form" onSubmit={save}>
      <label for={ids.secret}>
        {source.credential[0]?.toUpperCase()}
        {source.credential.slice(1)}
        {source.token_made_here ? " (leave empty to make a new one)" : ""}
      </label>
      <input
        id={ids.secret}
        type="password"
        autoComplete="new-password"
        value={secret}
        required={!source.token_made_here}
        maxLength={512}
        onInput={(e) => setSecret(e.currentTarget.value)}
        aria-describedby={`${ids.secret}-hint`}
      />
      <p id={`${ids.secret}-hint`} class="muted">
        {source.credential_hint[0]?.toUpperCase()}
        {source.credential_hint.slice(1)}. {source.configured ? "Saving replaces the one kept." : ""}
      </p>
      <label for={ids.field}>User field (optional)</label>
      <input
        id={ids.field}
        value={userField}
        maxLength={200}
        placeholder={source.user_field_example}
        onInput={(e) => setUserField(e.currentTarget.value)}
        aria-describedby={`${ids.field}-hint`}
      />
      <p id={`${ids.field}-hint`} class="muted">
        {source.user_field_kind === "parameter"
          ? "The name of a parameter of the callback's form or of its URL's query"
          : "A dotted path into the callback's JSON"}
        , e.g. <code>{source.user_field_example}</code>, that carries your user id. When empty, or missing from a
        callback: {source.user_field_default}.
      </p>
      {error !== null && <ErrorBox error={error} />}
      <button type="submit" class="button primary" disabled={saving}>
        {source.configured ? `Save ${source.title}` : `Set up ${source.title}`}
      </button>
    </form>
  );
}

function Remove({ source, onRemoved }: { source: SourceSetting; onRemoved: () => void }) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!asking) {
    return (
      <button type="button" class="button secondary" onClick={() => setAsking(true)}>
        Remove {source.title}
      </button>
    );
  }
  const remove = () => {
    setError(null);
    api.removeSource(source.platform).then(onRemoved, setError);
  };
  return (
    <div role="group" aria-label={`Remove ${source.title}?`} class="confirm">
      <p>
        Stop taking {source.title} callbacks? They are refused from now on, and its secret is forgotten.
      </p>
      <button type="button" class="button primary" onClick={remove}>
        Yes, remove {source.title}
      </button>{" "}
      <button type="button" class="button secondary" onClick={() => setAsking(false)}>
        Cancel
      </button>
      {error !== null && <ErrorBox error={error} />}
    </div>
  );
}

function Source({ source, reload }: { source: SourceSetting; reload: () => void }) {
  const [token, setToken] = useState<string | null>(null);
  const heading = `source-${source.platform}`;
  return (
    <section class="source" aria-labelledby={heading}>
      <h2 id={heading}>{source.title}</h2>
      <p>
        {source.configured ? (
          <>
            <strong>Configured</strong> since <Time value={source.configured_at} />; user from{" "}
            {source.user_field ? <code>{source.user_field}</code> : `the default fields (${source.user_field_default})`}.
          </>
        ) : (
          <>
            <strong>Not configured</strong>: its callbacks are refused.
          </>
        )}
      </p>
      <CallbackUrl source={source} />
      {token && (
        <p role="status" class="notice">
          The bearer token to give the Braze Current, shown only this once: <code>{token}</code>
        </p>
      )}
      <SourceForm
        key={`${source.configured_at ?? ""}`}
        source={source}
        onSaved={(made) => {
          setToken(made);
          reload();
        }}
      />
      {source.configured && (
        <Remove
          source={source}
          onRemoved={() => {
            setToken(null);
            reload();
          }}
        />
      )}
    </section>
  );
}

export function SourcesPage() {
  usePageTitle("Sources");
  const sources = useResource((signal) => api.sources(signal), []);
  const relative = sources.data?.some((source) => source.callback_url.startsWith("/")) ?? false;
  return (
    <section>
      <h1>Sources</h1>
      <p>
        The messaging platforms whose own delivery callbacks this app takes. Give the platform its callback URL and
        the secret it signs with; secrets are kept encrypted and never shown again.
      </p>
      {relative && (
        <p class="notice">
          PUBLIC_BASE_URL is not set, so the callback URLs below are paths: put the address the platforms reach this
          server at in front of them (and set PUBLIC_BASE_URL to it: Twilio's signatures are checked against it).
        </p>
      )}
      {sources.error !== null && <ErrorBox error={sources.error} onRetry={sources.reload} />}
      {sources.loading && <Loading />}
      {sources.data?.map((source) => <Source key={source.platform} source={source} reload={sources.reload} />)}
    </section>
  );
}
