import type { ComponentChildren, HTMLAttributes } from "preact";
import { useId } from "preact/hooks";

export interface Column<T> {
  header: string;
  cell: (row: T) => ComponentChildren;
  /** "num" right-aligns figures. */
  kind?: "num" | "text";
  className?: string;
}

interface TableProps<T> {
  /** The table's accessible name, shown as its caption. */
  caption: string;
  /** Show the caption to screen readers only (when a heading above already says it). */
  hideCaption?: boolean;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  rowProps?: (row: T, index: number) => HTMLAttributes<HTMLTableRowElement>;
}

/** A data table that scrolls sideways on narrow screens instead of squeezing its columns. */
export function Table<T>({ caption, hideCaption, columns, rows, rowKey, rowProps }: TableProps<T>) {
  const captionId = useId();
  return (
    <div class="table-wrap" role="region" aria-labelledby={captionId} tabIndex={0}>
      <table>
        <caption id={captionId} class={hideCaption ? "visually-hidden" : undefined}>
          {caption}
        </caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th scope="col" key={column.header} class={column.kind === "num" ? "num" : undefined}>
                {column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => (
            <tr key={rowKey(row)} {...(rowProps ? rowProps(row, index) : {})}>
              {columns.map((column) => (
                <td key={column.header} class={[column.kind === "num" ? "num" : "", column.className ?? ""].join(" ").trim() || undefined}>
                  {column.cell(row)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
