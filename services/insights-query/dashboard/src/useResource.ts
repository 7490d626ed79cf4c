import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "./api";

export interface Resource<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  /** Loads again with the same inputs (e.g. after a change elsewhere). */
  reload: () => void;
}

/**
 * Loads `load(signal)` whenever `deps` change, cancelling the request that is still running,
 * so a slow answer to an old input never replaces the answer to a newer one.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Resource<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const controller = new AbortController();
    setState((previous) => ({ data: previous.data, error: null, loading: true }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: null, loading: false });
      },
      (error: unknown) => {
        if (!controller.signal.aborted && !isAbort(error)) setState({ data: null, error, loading: false });
      },
    );
    return () => controller.abort();
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { ...state, reload };
}
