// The API key lives in sessionStorage only: it is gone when the tab closes.
const KEY = "insights.apiKey";

export function getKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function clearKey(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // Storage can be unavailable (private mode); there is nothing to forget then.
  }
}

export function isSignedIn(): boolean {
  return getKey() !== null;
}
