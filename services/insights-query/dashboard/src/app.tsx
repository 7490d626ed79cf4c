import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { loadMe, signOut } from "./api";
import { usePageTitle } from "./components/usePageTitle";
import { ImportPage } from "./pages/imports/ImportPage";
import { ImportsPage } from "./pages/imports/ImportsPage";
import { MessagePage } from "./pages/message/MessagePage";
import { AuditPage } from "./pages/audit/AuditPage";
import { MembersPage } from "./pages/members/MembersPage";
import { SettingsPage } from "./pages/settings/SettingsPage";
import { SignInPage } from "./pages/SignInPage";
import { SourcesPage } from "./pages/sources/SourcesPage";
import { TemplatePage } from "./pages/templates/TemplatePage";
import { TemplatesPage } from "./pages/templates/TemplatesPage";
import { UserPage } from "./pages/user/UserPage";
import { UsersPage } from "./pages/users/UsersPage";
import { Link, matchPath, navigate, useLocation } from "./router";
import { isSignedIn, may, me, onSessionChange, type Permission } from "./session";

type Params = Record<string, string>;

interface Route {
  path: string;
  /** What the signed-in member must be allowed; a page they may not open says so. */
  needs: Permission;
  render: (params: Params) => ComponentChildren;
}

// The dashboard's pages; the server answers index.html for each of these paths.
const ROUTES: Route[] = [
  { path: "/users", needs: "search_users", render: () => <UsersPage /> },
  {
    path: "/users/:user_id",
    needs: "view_profile",
    render: (p) => <UserPage key={p["user_id"]} userId={p["user_id"] ?? ""} />,
  },
  {
    path: "/users/:user_id/messages/:message_id",
    needs: "view_messages",
    render: (p) => (
      <MessagePage key={p["message_id"]} messageId={p["message_id"] ?? ""} userId={p["user_id"] ?? ""} />
    ),
  },
  {
    path: "/messages/:message_id",
    needs: "view_messages",
    render: (p) => <MessagePage key={p["message_id"]} messageId={p["message_id"] ?? ""} />,
  },
  { path: "/imports", needs: "import", render: () => <ImportsPage /> },
  {
    path: "/imports/:import_id",
    needs: "import",
    render: (p) => <ImportPage key={p["import_id"]} importId={p["import_id"] ?? ""} />,
  },
  { path: "/templates", needs: "view_templates", render: () => <TemplatesPage /> },
  {
    path: "/templates/:key",
    needs: "view_templates",
    render: (p) => <TemplatePage key={p["key"]} templateKey={p["key"] ?? ""} />,
  },
  { path: "/audit", needs: "read_audit", render: () => <AuditPage /> },
  { path: "/members", needs: "manage_members", render: () => <MembersPage /> },
  { path: "/sources", needs: "manage_sources", render: () => <SourcesPage /> },
  { path: "/settings", needs: "manage_settings", render: () => <SettingsPage /> },
];

// Only the pages the member may open are linked: an analyst never sees a link it cannot follow.
const NAV: { href: string; label: string; needs: Permission }[] = [
  { href: "/users", label: "Users", needs: "search_users" },
  { href: "/imports", label: "Imports", needs: "import" },
  { href: "/templates", label: "Templates", needs: "view_templates" },
  { href: "/audit", label: "Audit", needs: "read_audit" },
  { href: "/members", label: "Members", needs: "manage_members" },
  { href: "/sources", label: "Sources", needs: "manage_sources" },
  { href: "/settings", label: "Settings", needs: "manage_settings" },
];

function resolve(path: string): ComponentChildren {
  for (const route of ROUTES) {
    const params = matchPath(route.path, path);
    if (params) return may(route.needs) ? route.render(params) : <NotAllowed needs={route.needs} />;
  }
  return <NotFound />;
}

function NotAllowed({ needs }: { needs: Permission }) {
  usePageTitle("Not open to your role");
  return (
    <section>
      <h1>Not open to your role</h1>
      <p>
        Your role ({me()?.role ?? "this key"}) cannot open this page: it needs the permission <code>{needs}</code>. Ask
        an admin of the app if you need it. <Link href="/users">Search users</Link> instead.
      </p>
    </section>
  );
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
  const leave = () => {
    void signOut().catch(() => undefined);
  };
  const who = me();
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
              {NAV.filter((item) => may(item.needs)).map((item) => {
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
          {who && (
            <span class="who">
              {who.email} <span class="role-badge">{who.role}</span>
            </span>
          )}
          <button type="button" class="button secondary sign-out" onClick={leave}>
            Sign out
          </button>
        </>
      )}
    </header>
  );
}

export function App() {
  const { path } = useLocation();
  const [checked, setChecked] = useState(false);
  const [, setVersion] = useState(0);
  useEffect(() => onSessionChange(() => setVersion((n) => n + 1)), []);
  useEffect(() => {
    void loadMe()
      .catch(() => null)
      .finally(() => setChecked(true));
  }, []);
  const signedIn = isSignedIn();
  const mainRef = useRef<HTMLElement>(null);
  const firstPath = useRef(path);

  const isPublic = path === "/signin";
  const needsSignIn = checked && !isPublic && !signedIn;
  const atRoot = path === "/" || path === "";

  useEffect(() => {
    if (needsSignIn) {
      const next = atRoot ? "" : `?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
      navigate(`/signin${next}`, { replace: true });
    } else if (checked && atRoot) {
      navigate("/users", { replace: true });
    }
  }, [needsSignIn, atRoot, checked]);

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
        {isPublic ? <SignInPage /> : !checked || needsSignIn || atRoot ? null : resolve(path)}
      </main>
    </>
  );
}
