import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { usePageTitle } from "./components/usePageTitle";
import { ImportPage } from "./pages/imports/ImportPage";
import { ImportsPage } from "./pages/imports/ImportsPage";
import { MessagePage } from "./pages/message/MessagePage";
import { SignInPage } from "./pages/SignInPage";
import { TemplatePage } from "./pages/templates/TemplatePage";
import { TemplatesPage } from "./pages/templates/TemplatesPage";
import { UserPage } from "./pages/user/UserPage";
import { UsersPage } from "./pages/users/UsersPage";
import { Link, matchPath, navigate, useLocation } from "./router";
import { clearKey, isSignedIn } from "./session";

type Params = Record<string, string>;

interface Route {
  path: string;
  render: (params: Params) => ComponentChildren;
}

// The dashboard's pages; the server answers index.html for each of these paths.
const ROUTES: Route[] = [
  { path: "/users", render: () => <UsersPage /> },
  { path: "/users/:user_id", render: (p) => <UserPage key={p["user_id"]} userId={p["user_id"] ?? ""} /> },
  { path: "/messages/:message_id", render: (p) => <MessagePage key={p["message_id"]} messageId={p["message_id"] ?? ""} /> },
  { path: "/imports", render: () => <ImportsPage /> },
  { path: "/imports/:import_id", render: (p) => <ImportPage key={p["import_id"]} importId={p["import_id"] ?? ""} /> },
  { path: "/templates", render: () => <TemplatesPage /> },
  { path: "/templates/:key", render: (p) => <TemplatePage key={p["key"]} templateKey={p["key"] ?? ""} /> },
];

const NAV = [
  { href: "/users", label: "Users" },
  { href: "/imports", label: "Imports" },
  { href: "/templates", label: "Templates" },
];

function resolve(path: string): ComponentChildren {
  for (const route of ROUTES) {
    const params = matchPath(route.path, path);
    if (params) return route.render(params);
  }
  return <NotFound />;
}

function NotFound() {
  usePageTitle("Page not found");
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no page here. <Link href="/users">Search users</Link> instead.
      </p>
    </section>
  );
}

function Header({ path, signedIn }: { path: string; signedIn: boolean }) {
  const signOut = () => {
    clearKey();
    navigate("/signin");
  };
  return (
    <header class="app-header">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <Link href={signedIn ? "/users" : "/signin"} class="brand">
        User Insights
      </Link>
      {signedIn && (
        <>
          <nav aria-label="Main" class="main-nav">
            <ul>
              {NAV.map((item) => {
                const active = path === item.href || path.startsWith(`${item.href}/`);
                return (
                  <li key={item.href}>
                    <Link href={item.href} aria-current={active ? "page" : undefined}>
                      {item.label}
                    </Link>
                  </li>
                );
              })}
            </ul>
          </nav>
          <button type="button" class="button secondary sign-out" onClick={signOut}>
            Sign out
          </button>
        </>
      )}
    </header>
  );
}

export function App() {
  const { path } = useLocation();
  const signedIn = isSignedIn();
  const mainRef = useRef<HTMLElement>(null);
  const firstPath = useRef(path);

  const isPublic = path === "/signin";
  const needsSignIn = !isPublic && !signedIn;
  const atRoot = path === "/" || path === "";

  useEffect(() => {
    if (needsSignIn) {
      const next = atRoot ? "" : `?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
      navigate(`/signin${next}`, { replace: true });
    } else if (atRoot) {
      navigate("/users", { replace: true });
    }
  }, [needsSignIn, atRoot]);

  // After moving to another page, start keyboard and screen-reader users at its content,
  // unless the page already put the focus somewhere (e.g. a search box).
  useEffect(() => {
    if (firstPath.current === path) return;
    firstPath.current = path;
    const active = document.activeElement;
    if (!active || active === document.body || !document.body.contains(active)) mainRef.current?.focus();
  }, [path]);

  return (
    <>
      <Header path={path} signedIn={signedIn && !isPublic} />
      <main id="main" ref={mainRef} tabIndex={-1}>
        {isPublic ? <SignInPage /> : needsSignIn || atRoot ? null : resolve(path)}
      </main>
    </>
  );
}
