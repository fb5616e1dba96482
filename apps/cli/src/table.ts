/**
 * Plain-text tables for the CLI's human output: a header row, columns padded to their widest
 * cell, numbers aligned right, two spaces between columns, no trailing spaces.
 */

/** A table column: its header, and whether its cells align right (numbers). */
export interface Column {
  header: string;
  right?: boolean;
}

/** Renders rows of cells under the columns' headers. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, i) =>
    Math.max(column.header.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    columns
      .map((column, i) => {
        const cell = cells[i] ?? '';
        return column.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...rows.map((row) => line(row))].join('\n');
}

/** Shortens text to `max` characters, marking the cut with an ellipsis; newlines become spaces. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** An ISO time for ms since the epoch; `-` for 0 or an invalid time. */
export function isoTime(ms: number): string {
  return ms > 0 && Number.isFinite(ms) ? new Date(ms).toISOString() : '-';
}
