import { useEffect, useRef, useState } from "preact/hooks";

/**
 * The rendered width of an element, kept current as it resizes. Charts draw at the real pixel
 * width instead of scaling a fixed viewBox, so their text stays readable on a phone.
 */
export function useWidth<T extends HTMLElement>(fallback: number) {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const measure = (value: number) => {
      if (value > 0) setWidth(Math.floor(value));
    };
    measure(element.getBoundingClientRect().width);
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver((entries) => {
      const entry = entries[0];
      if (entry) measure(entry.contentRect.width);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}
