/**
 * The seed scenario's plot, written as SVG by hand (no plotting dependency): latency of each
 * message against the time it was accepted, for reseq, the sequential baseline and the ideal
 * ordered latency. The upper panel shows the whole range (sequential climbs without bound); the
 * lower one zooms in on reseq against the ideal.
 */
import type { RunResult } from './run.js';

/** One line of a chart. */
export interface Line {
  label: string;
  color: string;
  dashed?: boolean;
  points: readonly { x: number; y: number }[];
}

const WIDTH = 900;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 45 };

/** Round tick values covering [min, max]: steps of 1, 2 or 5 × 10^n, about `count` of them. */
export function ticks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One chart panel at vertical offset `top`. */
export function panel(
  title: string,
  lines: readonly Line[],
  top: number,
  yLabel: string,
  yRange?: { min: number; max: number },
  legendAt: 'top' | 'middle' = 'top',
): string {
  const all = lines.flatMap((l) => l.points);
  const xMax = Math.max(1, ...all.map((p) => p.x));
  const yBottom = yRange?.min ?? 0;
  const yTop = yRange?.max ?? Math.max(1, ...all.map((p) => p.y)) * 1.05;
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number): number => MARGIN.left + (v / xMax) * w;
  const clamp = (v: number): number => Math.min(Math.max(v, yBottom), yTop);
  const y = (v: number): number => top + MARGIN.top + h - ((clamp(v) - yBottom) / (yTop - yBottom)) * h;
  const parts: string[] = [];
  parts.push(
    `<text x="${MARGIN.left}" y="${top + 24}" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<rect x="${MARGIN.left}" y="${top + MARGIN.top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`,
  );
  for (const t of ticks(yBottom, yTop)) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + w}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${(y(t) + 4).toFixed(1)}" font-size="11" text-anchor="end">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`,
    );
  }
  for (const t of ticks(0, xMax)) {
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${top + MARGIN.top + h + 16}" font-size="11" text-anchor="middle">${t} s</text>`,
    );
  }
  parts.push(
    `<text x="${MARGIN.left + w / 2}" y="${top + PANEL_HEIGHT - 6}" font-size="12" text-anchor="middle">time the message was accepted</text>`,
    `<text x="16" y="${top + MARGIN.top + h / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${top + MARGIN.top + h / 2})">${escape(yLabel)}</text>`,
  );
  lines.forEach((line, i) => {
    if (line.points.length > 0) {
      const d = line.points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ');
      const dash = line.dashed ? ' stroke-dasharray="6 4"' : '';
      parts.push(`<polyline fill="none" stroke="${line.color}" stroke-width="2"${dash} points="${d}"/>`);
    }
    // The legend goes on the right, at the top or half way down, wherever the lines leave room.
    const lx = MARGIN.left + w - 36;
    const ly = top + MARGIN.top + (legendAt === 'top' ? 16 : h / 2) + i * 18;
    parts.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${line.color}" stroke-width="2"${line.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<text x="${lx - 6}" y="${ly}" font-size="12" text-anchor="end">${escape(line.label)}</text>`,
    );
  });
  return parts.join('\n');
}

/** The seed plot from the seed scenario's results; undefined without reseq's series. */
export function seedPlot(results: readonly RunResult[], caption: string): string | undefined {
  const seed = results.filter((r) => r.scenario === 'seed' && r.series !== undefined);
  const reseq = seed.find((r) => r.system === 'reseq');
  if (!reseq) return undefined;
  const sequential = seed.find((r) => r.system === 'sequential');
  const toLine = (run: RunResult, label: string, color: string): Line => {
    const missing = run.series!.filter((p) => p.latency === null).length;
    return {
      label: missing > 0 ? `${label} (${missing} not delivered by the end of the run)` : label,
      color,
      points: run.series!.filter((p) => p.latency !== null).map((p) => ({ x: p.t, y: p.latency! })),
    };
  };
  const ideal: Line = {
    label: 'ideal ordered latency',
    color: '#2ca02c',
    dashed: true,
    points: reseq.series!.map((p) => ({ x: p.t, y: p.ideal })),
  };
  const reseqLine = toLine(reseq, 'reseq', '#1f77b4');
  const upper = [
    reseqLine,
    ...(sequential ? [toLine(sequential, 'sequential (one BullMQ worker, concurrency 1)', '#d62728')] : []),
    ideal,
  ];
  // Zoomed around reseq and the ideal: their spread (at least 50 ms) above and below.
  const zoomed = [...reseqLine.points, ...ideal.points].map((p) => p.y);
  const spread = Math.max(50, Math.max(...zoomed) - Math.min(...zoomed));
  const zoom = { min: Math.max(0, Math.min(...zoomed) - spread), max: Math.max(...zoomed) + spread };
  const height = PANEL_HEIGHT * 2 + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    panel('Seed scenario: latency of each message (accept to delivery)', upper, 0, 'latency', undefined, 'middle'),
    panel(
      'The same, zoomed in: reseq against the ideal ordered latency',
      [reseqLine, ideal],
      PANEL_HEIGHT,
      'latency',
      zoom,
    ),
    `<text x="${MARGIN.left}" y="${height - 8}" font-size="11" fill="#555">${escape(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
