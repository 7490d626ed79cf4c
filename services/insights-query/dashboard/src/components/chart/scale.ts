/** Axis arithmetic for small charts of whole counts. */

/** A round top for a count axis (1, 2, 5, 10, 20, 50 … times a power of ten), at least `max`. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    const top = step * power;
    if (top >= max && Number.isInteger(top)) return top;
  }
  return 10 * power;
}

/** Whole-number ticks from 0 to `top` at a round step that divides it, at most `most` steps. */
export function countTicks(top: number, most = 5): number[] {
  let step = Math.max(1, top);
  for (let power = 1; power <= top; power *= 10) {
    const found = [1, 2, 2.5, 5].map((m) => m * power).find((s) => Number.isInteger(s) && top % s === 0 && top / s <= most);
    if (found !== undefined) {
      step = found;
      break;
    }
  }
  const ticks: number[] = [];
  for (let value = 0; value <= top; value += step) ticks.push(value);
  return ticks;
}

/** Every how many items a label fits, when each label needs `labelWidth` of `width`. */
export function labelEvery(count: number, width: number, labelWidth: number): number {
  const fit = Math.max(1, Math.floor(width / labelWidth));
  return Math.max(1, Math.ceil(count / fit));
}
