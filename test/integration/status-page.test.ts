/**
 * The sender's live status page in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): one lane per destination, delivered counts that move while messages flow,
 * a screenshot that is a real picture, and the token check on `/status` and `/status.json`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { freePort, Harness, ingestUrl, pipelineConfig, post, TEST_TRANSFORM } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
// CI installs chromium (.ci/run, ensure_chromium): there a missing browser is a failure, not a skip.
if (!HAVE_CHROMIUM && !process.env.CI) {
  console.warn(
    `status-page.test.ts: SKIPPED, ${CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium)`,
  );
}

const TOKEN = 'status-page-test-token-0123456789';
const DESTINATIONS = ['alpha', 'beta', 'gamma'];

/** Width and height from a PNG's IHDR chunk (bytes 16..24), after checking the signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe.skipIf(!HAVE_CHROMIUM && !process.env.CI)('status page', () => {
  let h: Harness;
  let browser: BrowserContext | undefined;
  let profile: string | undefined;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await h.cleanup();
  });

  it('shows a lane per destination that updates live, behind the ingest tokens', async () => {
    h = new Harness('status page', inject('redisUrl'));
    const sinks: Record<string, HttpSink> = {};
    for (const d of DESTINATIONS) sinks[d] = await h.sink();
    const config = await h.config(
      pipelineConfig(Object.fromEntries(DESTINATIONS.map((d) => [d, { url: sinks[d]!.url }])), {
        ingest: { tokens: { ops: TOKEN } },
      }),
    );
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '20' });
    const port = await freePort();
    await h.start('resequencer-sender', config, { METRICS_PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;

    // Same auth as the admin surface: the ingest tokens, as a Bearer header or ?token=.
    expect((await fetch(`${base}/status.json`)).status).toBe(401);
    expect((await fetch(`${base}/status`)).status).toBe(401);
    expect((await fetch(`${base}/status.json?token=wrong`)).status).toBe(401);
    const json = await fetch(`${base}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(json.status).toBe(200);
    expect(Object.keys(((await json.json()) as { destinations: object }).destinations)).toEqual(DESTINATIONS);
    // The ops endpoints stay open (probes carry no token).
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    profile = await mkdtemp(join(tmpdir(), 'reseq-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 700 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(`${base}/status?token=${TOKEN}`);
    const lanes = page.locator('section.lane');
    await expect.poll(() => lanes.count(), { timeout: 10_000 }).toBe(DESTINATIONS.length);
    expect(await page.locator('section.lane .name').allTextContents()).toEqual(DESTINATIONS);
    const delivered = (d: string): Promise<string> =>
      page.locator(`section.lane[data-destination="${d}"] dd.delivered`).innerText();
    for (const d of DESTINATIONS) expect(await delivered(d)).toBe('0 / 0');
    const before = await page.screenshot();

    const count = 12;
    for (let n = 1; n <= count; n++) {
      const reply = await post(
        `${ingestUrl(ingest)}/v1/messages`,
        { destinations: DESTINATIONS, payload: { n } },
        { authorization: `Bearer ${TOKEN}` },
      );
      expect(reply.status).toBe(202);
    }
    await waitFor(() => DESTINATIONS.every((d) => sinks[d]!.unique().length >= count), 'every delivery', 20_000);
    // The page shows it without a reload: its own poll of status.json.
    for (const d of DESTINATIONS) {
      await expect.poll(() => delivered(d), { timeout: 10_000 }).toBe(`${count} / ${count}`);
      const cell = (field: string): Promise<string> =>
        page.locator(`section.lane[data-destination="${d}"] dd.${field}`).innerText();
      expect(await cell('inFlight')).toBe('0');
      expect(await cell('lag')).toBe('0 (0.0 s)');
    }
    // A few seconds of samples so the throughput chart draws a line, not a point.
    const points = async (): Promise<number> =>
      ((await page.locator('section.lane[data-destination="alpha"] .tp polyline').getAttribute('points')) ?? '')
        .split(' ')
        .filter(Boolean).length;
    await expect.poll(points, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    const after = await page.screenshot();

    for (const png of [before, after]) {
      expect(pngSize(png)).toEqual({ width: 1200, height: 700 });
      // A blank (one-colour) 1200x700 PNG compresses to well under 5 KB.
      expect(png.length).toBeGreaterThan(5_000);
    }
    expect(after.equals(before)).toBe(false);
    // Kept for a person to look at (.tmp is git-ignored).
    await mkdir(join(import.meta.dirname, '../../.tmp'), { recursive: true });
    await writeFile(join(import.meta.dirname, '../../.tmp/status-page.png'), after);
  });
});
