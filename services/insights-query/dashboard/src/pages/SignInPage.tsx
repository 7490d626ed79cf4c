import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, checkKey } from "../api";
import { usePageTitle } from "../components/usePageTitle";
import { navigate, useLocation } from "../router";
import { setKey } from "../session";

/** Where to go after signing in: a path of this dashboard only, never another origin. */
function nextPath(search: URLSearchParams): string {
  const next = search.get("next") ?? "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin") ? next : "/users";
}

function refusal(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401 || error.status === 403) {
      return `The API key was refused${error.detail ? `: ${error.detail}` : "."}`;
    }
    return `The key could not be checked: ${error.title}${error.detail ? `. ${error.detail}` : ""}`;
  }
  return "The key could not be checked. Try again.";
}

export function SignInPage() {
  usePageTitle("Sign in");
  const { search } = useLocation();
  const [key, setKeyText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const candidate = key.trim();
    if (!candidate) {
      setError("Enter an API key. Create one with: insights keys create --app APP");
      return;
    }
    setChecking(true);
    setError(null);
    try {
      await checkKey(candidate);
      setKey(candidate);
      navigate(nextPath(search), { replace: true });
    } catch (caught) {
      setError(refusal(caught));
      setChecking(false);
    }
  };

  return (
    <section class="signin">
      <h1>Sign in</h1>
      <p>
        Sign in with an API key of your app. Create one with <code>insights keys create --app APP</code>. The key is
        kept in this tab only and forgotten when it closes.
      </p>
      <form onSubmit={submit} noValidate>
        <label for="api-key">API key</label>
        <input
          ref={inputRef}
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          value={key}
          onInput={(event) => setKeyText(event.currentTarget.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "signin-error" : undefined}
        />
        {error && (
          <p id="signin-error" role="alert" class="error-box">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={checking} aria-busy={checking}>
          Sign in
        </button>
      </form>
    </section>
  );
}
