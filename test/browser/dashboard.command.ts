/**
 * A vitest browser command (runs in Node, drives Chromium through Playwright): opens the
 * dashboard `qmpkit serve` printed in a tab of the test's browser context, uses it as a person
 * would (labels, roles, the keyboard), saves screenshots, and reports what the page showed.
 * The dashboard is another origin than the test page, so it cannot be read from the test's
 * own frame; the assertions stay in the test file.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { BrowserCommand } from 'vitest/node';

export interface DashboardReport {
  readonly runState: string;
  /** Text of the block graph's rows (`parent | role | child`). */
  readonly graph: readonly string[];
  /** Snapshot names in document order, nested ones as `parent/child`. */
  readonly snapshots: readonly string[];
  /** Event names in the log, in order. */
  readonly events: readonly string[];
  /** The progress line after the save and after the load. */
  readonly saved: string;
  readonly loaded: string;
  /** The alert a page with a wrong token shows. */
  readonly wrongTokenAlert: string;
  /** Errors the page logged to the console (before the wrong-token visit). */
  readonly consoleErrors: readonly string[];
  readonly screenshots: readonly string[];
}

declare module 'vitest/browser' {
  interface BrowserCommands {
    dashboard(url: string, screenshotDir: string): Promise<DashboardReport>;
  }
}

/** Playwright's deadline for each wait: a guard against a hang, not a speed check. */
const WAIT = { timeout: 60_000 } as const;

export const dashboard: BrowserCommand<[url: string, screenshotDir: string]> = async (
  ctx,
  url,
  screenshotDir,
) => {
  mkdirSync(screenshotDir, { recursive: true });
  const screenshots: string[] = [];
  const shot = async (page: typeof ctx.page, name: string) => {
    const file = path.join(screenshotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    screenshots.push(file);
  };
  const page = await ctx.context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  try {
    await page.goto(url);
    await page.locator('body[data-ready="true"]').waitFor(WAIT);
    await page.locator('#run-state[data-state="running"]').waitFor(WAIT);
    const runState = (await page.locator('#run-state').textContent()) ?? '';
    await shot(page, 'dashboard-start');

    // Save from the form: the label names the field, the button its role.
    await page.getByLabel('Snapshot name').fill('from-page');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('saved from-page in').waitFor(WAIT);
    await page.locator('li[data-snapshot="from-page"]').waitFor(WAIT);
    await page.locator('#event-log li[data-event="RESUME"]').first().waitFor(WAIT);
    const saved = (await page.locator('#progress-text').textContent()) ?? '';
    await shot(page, 'dashboard-after-save');

    // Load it with its button, then save a second one with the keyboard (Enter submits).
    await page.getByRole('button', { name: 'Load snapshot from-page' }).click();
    await page.getByText('loaded from-page in').waitFor(WAIT);
    const loaded = (await page.locator('#progress-text').textContent()) ?? '';
    await page.getByLabel('Snapshot name').fill('second');
    await page.getByLabel('Snapshot name').press('Enter');
    await page.locator('li[data-snapshot="from-page"] li[data-snapshot="second"]').waitFor(WAIT);
    await shot(page, 'dashboard-after-load');

    const graph = await page.locator('#block-graph tbody tr').allInnerTexts();
    const snapshots = await page
      .locator('#snapshot-tree li')
      .evaluateAll((items) => items.map((li) => li.getAttribute('data-path') ?? '?'));
    const events = await page
      .locator('#event-log li')
      .evaluateAll((items) => items.map((li) => li.getAttribute('data-event') ?? '?'));

    const errorsBeforeBadInput = [...consoleErrors];
    // Bad input: the same page with a wrong token says so.
    const wrong = new URL(url);
    wrong.searchParams.set('token', 'wrong');
    await page.goto(wrong.href);
    await page.getByRole('alert').getByText('wrong token').waitFor(WAIT);
    const wrongTokenAlert = (await page.getByRole('alert').textContent()) ?? '';
    await shot(page, 'dashboard-wrong-token');
    return {
      runState,
      graph: graph.map((row) => row.replace(/\t/g, ' | ')),
      snapshots,
      events,
      saved,
      loaded,
      wrongTokenAlert,
      consoleErrors: errorsBeforeBadInput,
      screenshots,
    };
  } catch (error) {
    await shot(page, 'dashboard-failure').catch(() => {
      // the page may be gone; the original error is what matters
    });
    throw error;
  } finally {
    await page.close();
  }
};
