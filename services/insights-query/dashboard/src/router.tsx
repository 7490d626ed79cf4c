import type { ComponentChildren, PartialAnchorHTMLAttributes, TargetedMouseEvent } from "preact";
import { useEffect, useState } from "preact/hooks";

/** A small history-API router: the pathname decides the page, the query string its state. */

export interface Location {
  path: string;
  search: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: window.location.pathname, search: new URLSearchParams(window.location.search) };
}

function notify(): void {
  for (const listener of listeners) listener();
}

function address(): string {
  return window.location.pathname + window.location.search;
}

// The page shown before this one (with its query, i.e. its filters): a replaced entry (a filter
// change) is the same page, so it moves only `shown`.
let shown = address();
let before: string | null = null;

function moved(replaced: boolean): void {
  const now = address();
  if (!replaced && now !== shown) before = shown;
  shown = now;
  notify();
}

window.addEventListener("popstate", () => moved(false));

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === address()) return;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  if (!options.replace) window.scrollTo(0, 0);
  moved(options.replace ?? false);
}

/** The address of the page shown before this one in the app, or null. */
export function previousAddress(): string | null {
  return before;
}

/** The current location; the component re-renders when it changes. */
export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const listener = () => setLocation(current());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return location;
}

/** Replaces the query string (keeping the path), e.g. for filters that should survive reload. */
export function setSearch(params: Record<string, string | null | undefined>): void {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  const query = search.toString();
  navigate(window.location.pathname + (query ? `?${query}` : ""), { replace: true });
}

/** Matches "/users/:user_id" against a path; answers the decoded parameters or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const have = path.split("/").filter(Boolean);
  if (want.length !== have.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i += 1) {
    const part = want[i] as string;
    const value = have[i] as string;
    if (part.startsWith(":")) {
      try {
        params[part.slice(1)] = decodeURIComponent(value);
      } catch {
        return null;
      }
    } else if (part !== value) {
      return null;
    }
  }
  return params;
}

/** A path segment built from user data, e.g. `/users/${segment(id)}`. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

type AnchorProps = Omit<PartialAnchorHTMLAttributes<HTMLAnchorElement>, "href" | "role"> & {
  href: string;
  children?: ComponentChildren;
};

/** An ordinary link that navigates without a page load (modified clicks still open a new tab). */
export function Link({ href, onClick, ...rest }: AnchorProps) {
  const handle = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (typeof onClick === "function") onClick(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={handle} {...rest} />;
}
