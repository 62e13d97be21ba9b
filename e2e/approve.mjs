// Drives Debian's chromium through the approval web queue as a person
// would: sign in with a user key, open a pending approval, check that its
// impact is shown, save a screenshot of the detail page, approve it and see
// that it succeeded. The Go test TestApprovalQueueInBrowser
// (cmd/signalsmith) starts the server, queues the approval and checks the
// effect and the audit trail afterwards.
//
// Input (environment): SIGNALSMITH_URL, SIGNALSMITH_ADMIN_KEY,
// SIGNALSMITH_APPROVAL_ID, SIGNALSMITH_EXPECT (text the impact must show,
// "|"-separated), SIGNALSMITH_ARTIFACTS (a directory for screenshots).
// Output: one JSON line on stdout; exit status 0 only when every check held.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env('SIGNALSMITH_URL');
const key = env('SIGNALSMITH_ADMIN_KEY');
const id = env('SIGNALSMITH_APPROVAL_ID');
const expect = env('SIGNALSMITH_EXPECT').split('|');
const artifacts = env('SIGNALSMITH_ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
};

const profile = mkdtempSync(join(tmpdir(), 'signalsmith-chromium-'));
const problems = [];
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  // A CSP violation or a script error is a defect of the page.
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon/.test(m.text())) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));

  // The agent's link leads to the sign-in page, then back to the approval.
  await page.goto(`${base}/approvals/${id}`);
  check(page.url().includes('/approvals/login'), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('API key').fill(key);
  await Promise.all([page.waitForURL(`**/approvals/${id}`), page.getByRole('button', { name: 'Sign in' }).click()]);

  // The detail page shows the request and its impact.
  await page.getByRole('heading', { level: 1, name: `Approval ${id}` }).waitFor();
  const impact = page.locator('section', { has: page.getByRole('heading', { name: 'Impact' }) });
  const impactText = await impact.innerText();
  for (const want of expect) check(impactText.includes(want), `impact lacks ${JSON.stringify(want)}:\n${impactText}`);
  const request = await page.locator('section', { has: page.getByRole('heading', { name: 'Request' }) }).innerText();
  check(request.includes('Why it needs approval'), 'the request section lacks the reason');
  await page.screenshot({ path: join(artifacts, 'approval-detail.png'), fullPage: true });

  // The same page on a phone: no sideways scrolling of the page itself.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 1, `the detail page scrolls sideways on a phone by ${overflow}px`);
  await page.screenshot({ path: join(artifacts, 'approval-detail-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Keyboard: from the comment, Tab reaches the approve button, which
  // shows a focus outline.
  await page.getByLabel('Comment for the requester (optional)').fill('approved in the browser test');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => {
    const el = document.activeElement;
    return { text: el?.textContent?.trim(), outline: el ? getComputedStyle(el).outlineStyle : 'none' };
  });
  check(focused.text === 'Approve and run' && focused.outline !== 'none', `focus after the comment: ${JSON.stringify(focused)}`);
  await Promise.all([
    page.waitForURL(`**/approvals/${id}?done=approved`),
    page.getByRole('button', { name: 'Approve and run' }).click(),
  ]);
  await page.getByText('You approved it.').waitFor();
  const outcome = await page.locator('section', { has: page.getByRole('heading', { name: 'Outcome' }) }).innerText();
  check(/succeeded/.test(outcome), `the outcome is not succeeded:\n${outcome}`);
  const decision = await page.locator('section', { has: page.getByRole('heading', { name: 'Decision' }) }).innerText();
  check(decision.includes('approved in the browser test'), 'the decision does not show the comment');
  await page.screenshot({ path: join(artifacts, 'approval-done.png'), fullPage: true });

  // The queue lists it as succeeded.
  await page.goto(`${base}/approvals?state=succeeded`);
  check((await page.locator('table.approvals').innerText()).includes(id), 'the succeeded list lacks the approval');
  await page.screenshot({ path: join(artifacts, 'approval-list.png'), fullPage: true });
  check(problems.length === 0, `browser errors: ${problems.join('; ')}`);
  console.log(JSON.stringify({ ok: true, approval: id }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err?.message ?? err), problems }));
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
