import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type SessionOptions, sessionOptions, signIn } from "../api";
import { usePageTitle } from "../components/usePageTitle";
import { navigate, useLocation } from "../router";

/** Where to go after signing in: a path of this dashboard only, never another origin. */
function nextPath(search: URLSearchParams): string {
  const next = search.get("next") ?? "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin") ? next : "/users";
}

function refusal(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return "The app, email and password do not match a member. Check them and try again.";
    if (error.status === 429) return `Too many failed sign-ins from here. ${error.detail ?? "Wait a minute and try again."}`;
    return `Signing in did not work: ${error.title}${error.detail ? `. ${error.detail}` : ""}`;
  }
  return "Signing in did not work. Try again.";
}

// Why the server sent the browser back from single sign-on without a session (?sso_error=).
const SSO_REFUSALS: Record<string, string> = {
  not_member:
    "Your organization signed you in, but that email is not a member of this app. Ask an admin of the app to add you, or check the app's name.",
  unverified: "Your organization has not verified your email address yet. Verify it there, then sign in again.",
  no_email: "Your organization did not tell us your email address, so we cannot find your membership. Ask your administrator.",
  denied: "Your organization did not sign you in. Try again, or sign in with your password.",
  expired: "That sign-in took too long or was started in another browser. Sign in again.",
  provider: "Your organization's sign-in could not be reached or checked. Try again in a minute, or sign in with your password.",
};

function ssoRefusal(search: URLSearchParams): string | null {
  const code = search.get("sso_error");
  if (code === null) return null;
  return SSO_REFUSALS[code] ?? "Single sign-on did not work. Try again, or sign in with your password.";
}

const LAST_APP = "insights.app";

function rememberApp(app: string): void {
  try {
    localStorage.setItem(LAST_APP, app);
  } catch {
    // Storage can be unavailable (private mode); the app is typed again next time.
  }
}

function lastApp(): string {
  try {
    return localStorage.getItem(LAST_APP) ?? "";
  } catch {
    return "";
  }
}

export function SignInPage() {
  usePageTitle("Sign in");
  const { search } = useLocation();
  const [app, setApp] = useState(lastApp);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(() => ssoRefusal(search));
  const [checking, setChecking] = useState(false);
  const [options, setOptions] = useState<SessionOptions | null>(null);
  useEffect(() => {
    sessionOptions()
      .then(setOptions)
      .catch(() => setOptions(null));
  }, []);
  const appRef = useRef<HTMLInputElement>(null);
  const emailRef = useRef<HTMLInputElement>(null);
  useEffect(() => (app ? emailRef : appRef).current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!app.trim() || !email.trim() || !password) {
      setError("Enter the app, your email and your password. An admin adds members with: insights members add");
      return;
    }
    setChecking(true);
    setError(null);
    try {
      await signIn(app.trim(), email.trim(), password);
      rememberApp(app.trim());
      navigate(nextPath(search), { replace: true });
    } catch (caught) {
      setError(refusal(caught));
      setChecking(false);
    }
  };

  const sso = options?.sso ?? null;
  // A plain link, not a form: the content policy lets forms post only to this origin, and the
  // server answers with a redirect to the organization's provider.
  const ssoHref = sso ? `${sso.start}?app=${encodeURIComponent(app.trim())}` : undefined;
  const toProvider = (event: Event) => {
    if (!app.trim()) {
      event.preventDefault();
      setError("Enter the app first: single sign-on signs you in to one app.");
      appRef.current?.focus();
      return;
    }
    rememberApp(app.trim());
  };

  const described = error ? "signin-error" : undefined;
  return (
    <section class="signin">
      <h1>Sign in</h1>
      <p>Sign in with the email and password of your membership in the app.</p>
      <form onSubmit={submit} noValidate>
        <label for="signin-app">App</label>
        <input
          ref={appRef}
          id="signin-app"
          name="app"
          autoComplete="organization"
          spellcheck={false}
          value={app}
          onInput={(event) => setApp(event.currentTarget.value)}
          aria-describedby={described}
        />
        <label for="signin-email">Email</label>
        <input
          ref={emailRef}
          id="signin-email"
          name="email"
          type="email"
          autoComplete="username"
          spellcheck={false}
          value={email}
          onInput={(event) => setEmail(event.currentTarget.value)}
          aria-describedby={described}
        />
        <label for="signin-password">Password</label>
        <input
          id="signin-password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onInput={(event) => setPassword(event.currentTarget.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={described}
        />
        {error && (
          <p id="signin-error" role="alert" class="error-box">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={checking} aria-busy={checking}>
          Sign in
        </button>
        {sso && (
          <>
            <p class="signin-or">or</p>
            <a class="button secondary" href={ssoHref} onClick={toProvider}>
              {sso.label}
            </a>
          </>
        )}
      </form>
    </section>
  );
}
