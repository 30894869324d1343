// The main flows in Debian's Chromium on a Pixel 7 viewport, against the real API serving the built app
// and its model. Run with `npm run test:e2e` (builds first); E2E_BASE_URL points at an already running API.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApi } from './support/api-server.mjs';
import { launchChromium, newPhoneContext, tellPageOffline } from './support/browser.mjs';
import { ensureResultsDir, findFlyAgaricPhoto } from './support/paths.mjs';

const resultsDir = ensureResultsDir();
const flyAgaric = findFlyAgaricPhoto();
const api = flyAgaric.photo ? await startApi() : null;

let skipReason = flyAgaric.reason;
if (!skipReason && api && !api.ready) {
  skipReason = `the API at ${api.baseUrl} is not ready (no model served?): ${api.detail}`;
}
if (skipReason) console.warn(`SKIPPING e2e: ${skipReason}`);

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const shot = (page, name) => page.screenshot({ path: join(resultsDir, name), fullPage: true });

/**
 * Runs in the page before the app: records what each POST /predict uploads (DevTools does not expose
 * multipart Blob bodies), so the test can check the photo was downscaled to a JPEG in the browser.
 */
function recordUploads() {
  window.__uploads = [];
  const originalFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    if (url.pathname === '/predict') {
      const file = (await request.clone().formData()).get('file');
      const bitmap = await createImageBitmap(file).catch(() => null);
      window.__uploads.push({
        name: file.name,
        type: file.type,
        size: file.size,
        width: bitmap?.width ?? null,
        height: bitmap?.height ?? null,
        topK: url.searchParams.get('top_k'),
      });
    }
    return originalFetch(request);
  };
}

/** axe-core on the current page; returns the serious and critical violations. */
async function seriousAccessibilityViolations(page) {
  // Evaluated through DevTools, not an inline <script>: the app's CSP (rightly) refuses inline
  // scripts, and the test checks the page as served, CSP included.
  await page.evaluate(axeSource);
  const results = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`);
}

describe('Mushroom ID on a phone, against the real API', { skip: skipReason ?? false }, () => {
  let browser;
  let context;

  before(async () => {
    browser = await launchChromium();
    context = await newPhoneContext(browser);
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await api?.stop();
  });

  test('a fly agaric photo shows the dangerous verdict with Amanita muscaria on top', async () => {
    const page = await context.newPage();
    await page.addInitScript(recordUploads);
    await page.goto(api.baseUrl);
    await page.getByRole('heading', { name: 'Identify a mushroom' }).waitFor();
    await shot(page, '01-home.png');
    assert.deepEqual(await seriousAccessibilityViolations(page), [], 'axe-core: serious problems on the home screen');

    await page.getByLabel('Choose from gallery').setInputFiles(flyAgaric.photo);
    // The crop step: the whole photo, framed as it is.
    await page.getByTestId('crop-box').waitFor();
    await shot(page, '01b-crop.png');
    assert.deepEqual(await seriousAccessibilityViolations(page), [], 'axe-core: serious problems on the crop screen');
    await page.getByRole('button', { name: 'Use this photo' }).click();
    // Downscaled and re-encoded in the browser: a JPEG part, at most 1024 px on its long side.
    await page.waitForFunction(() => window.__uploads.length > 0);
    const [upload] = await page.evaluate(() => window.__uploads);
    assert.equal(upload.type, 'image/jpeg');
    assert.match(upload.name, /\.jpg$/);
    assert.ok(Math.max(upload.width, upload.height) <= 1024, JSON.stringify(upload));
    assert.equal(upload.topK, '3');

    const banner = page.getByTestId('verdict-banner');
    await banner.waitFor({ timeout: 60_000 });
    assert.equal(await banner.getAttribute('data-verdict'), 'dangerous');
    assert.equal(await banner.getAttribute('role'), 'alert');
    assert.match(await banner.innerText(), /DANGEROUS/);
    const top = page.getByTestId('prediction-list').getByRole('listitem').first();
    assert.match(await top.innerText(), /Amanita muscaria/);
    assert.equal(await top.getAttribute('data-species'), 'amanita_muscaria');
    await shot(page, '02-result-dangerous.png');

    const violations = await seriousAccessibilityViolations(page);
    assert.deepEqual(violations, [], 'axe-core found serious accessibility problems on the result');

    await page.getByRole('button', { name: 'Show where the model looked' }).click();
    await page.getByRole('img', { name: /heat map over your photo/i }).waitFor({ timeout: 60_000 });
    await page.getByRole('img', { name: /heat map over your photo/i }).scrollIntoViewIfNeeded();
    await shot(page, '03-heatmap.png');

    // Feedback, sharing the photo only after ticking the box: POST /feedback, then /feedback/{id}/photo.
    await page.getByRole('button', { name: 'This is wrong' }).click();
    await page.getByLabel('What is it, if you know?').selectOption({ index: 1 });
    await page.getByLabel('Also share my photo to help improve the model').check();
    await page.getByRole('button', { name: 'Send feedback' }).click();
    await page.getByText('Thank you. Your feedback and photo help improve the app.').waitFor({ timeout: 30_000 });

    await page.getByRole('button', { name: 'History' }).click();
    const history = page.getByTestId('history-list');
    await history.waitFor();
    assert.match(await history.innerText(), /DANGEROUS[\s\S]*Amanita muscaria/);
    await shot(page, '04-history.png');
    await page.close();
  });

  test('framing a photo with the keyboard sends only the crop', async () => {
    const page = await context.newPage();
    await page.addInitScript(recordUploads);
    await page.goto(api.baseUrl);
    await page.getByLabel('Choose from gallery').setInputFiles(flyAgaric.photo);
    const box = page.getByRole('button', { name: 'Crop box' });
    await box.focus();
    // Three steps smaller (1/1.1 each, about its centre), then two to the right.
    await page.keyboard.press('-');
    await page.keyboard.press('-');
    await page.keyboard.press('-');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    assert.match(await page.getByTestId('crop-status').innerText(), /Crop: 75% wide and 75% high, 16% from the left and 12% from the top/);
    await shot(page, '01c-crop-framed.png');
    await page.getByRole('button', { name: 'Use this photo' }).click();
    await page.waitForFunction(() => window.__uploads.length > 0);
    const [upload] = await page.evaluate(() => window.__uploads);
    const [cropWidth, cropHeight] = [upload.width, upload.height];
    await page.getByTestId('verdict-banner').waitFor({ timeout: 60_000 });
    // The same photo, whole, as prepared: the crop is three quarters of it on each side.
    await page.getByRole('button', { name: 'New photo' }).first().click();
    await page.getByLabel('Choose from gallery').setInputFiles(flyAgaric.photo);
    await page.getByRole('button', { name: 'Use this photo' }).click();
    await page.waitForFunction(() => window.__uploads.length > 1);
    const whole = (await page.evaluate(() => window.__uploads))[1];
    assert.ok(Math.abs(cropWidth / whole.width - 0.7513) < 0.01, JSON.stringify({ cropWidth, whole }));
    assert.ok(Math.abs(cropHeight / whole.height - 0.7513) < 0.01, JSON.stringify({ cropHeight, whole }));
    await page.close();
  });

  test('a text file gets a clear error, not a verdict', async () => {
    const page = await context.newPage();
    await page.goto(api.baseUrl);
    await page.getByLabel('Choose from gallery').setInputFiles({
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('Chanterelles near the old birch, 12 September.\n'),
    });
    await page.getByRole('button', { name: 'Use this photo' }).click();
    const error = page.getByTestId('identify-error');
    await error.waitFor({ timeout: 30_000 });
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.equal(await error.getAttribute('data-error-kind'), 'unsupported');
    assert.match(await error.innerText(), /Not a photo we can read/);
    assert.match(await error.innerText(), /JPEG/);
    assert.equal(await page.getByTestId('verdict-banner').count(), 0);
    await shot(page, '05-error-not-an-image.png');
    await page.close();
  });

  test('installable PWA: manifest, icons, a service worker; offline the shell opens and photos wait', async () => {
    // Without the model kit (its rules file refused) the phone cannot answer offline, so photos
    // wait in the queue; on-device answers have their own test (on-device.e2e.test.mjs).
    await context.route('**/model/rules', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: '{"detail":"refused by the test"}' }));
    const page = await context.newPage();
    await page.goto(api.baseUrl);
    const manifestHref = await page.locator('link[rel="manifest"]').getAttribute('href');
    const manifest = await (await page.request.get(new URL(manifestHref, api.baseUrl).href)).json();
    assert.equal(manifest.display, 'standalone');
    assert.equal(manifest.start_url, '/');
    assert.ok(manifest.name && manifest.short_name && manifest.theme_color);
    const sizes = manifest.icons.map((icon) => `${icon.sizes}:${icon.purpose}`);
    assert.ok(sizes.includes('192x192:any') && sizes.includes('512x512:any') && sizes.includes('512x512:maskable'));
    for (const icon of manifest.icons) {
      const response = await page.request.get(new URL(icon.src, api.baseUrl).href);
      assert.equal(response.headers()['content-type'], 'image/png', icon.src);
    }
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    assert.equal(scope, `${api.baseUrl}/`);
    // The install step precaches the shell; wait until the worker controls the page.
    await page.reload();
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    // Chromium's own verdict on installability (what Lighthouse's PWA audit used).
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    // Playwright's contexts are incognito profiles, which never install apps: that one is about the test browser.
    const appErrors = installabilityErrors.filter((error) => error.errorId !== 'in-incognito');
    assert.deepEqual(appErrors, [], 'Chromium says the app is not installable');
    const { errors: manifestErrors } = await cdp.send('Page.getAppManifest');
    assert.deepEqual(manifestErrors, [], 'Chromium found manifest errors');
    await cdp.detach();

    // Forget a model kit stored by the earlier pages (the route keeps a new one from being stored).
    await page.evaluate(async () => {
      for (const name of await caches.keys()) if (name.startsWith('mushroom-id-model-')) await caches.delete(name);
    });
    await context.setOffline(true);
    let backOnline = async () => undefined;
    try {
      await page.reload();
      backOnline = await tellPageOffline(context, page);
      await page.getByTestId('offline-banner').waitFor();
      assert.match(await page.getByTestId('offline-banner').innerText(), /You are offline/);
      // Past answers (the fly agaric above) stay readable offline, thumbnails included.
      await page.getByRole('button', { name: 'History' }).click();
      await page.getByTestId('history-list').waitFor();
      assert.ok((await page.getByTestId('history-list').getByRole('listitem').count()) > 0, 'history is empty');
      assert.ok((await page.getByTestId('history-list').getByRole('img').count()) > 0, 'history has thumbnails');
      await shot(page, '06-offline-history.png');
      await page.getByRole('button', { name: 'Identify' }).click();
      await page.getByLabel('Choose from gallery').setInputFiles(flyAgaric.photo);
      await page.getByRole('button', { name: 'Use this photo' }).click();
      await page.getByText(/your photo is saved and will be identified/i).waitFor();
      await page.getByText('1 photo is waiting to be identified.').waitFor();
      await shot(page, '07-offline-queued.png');
    } finally {
      await context.setOffline(false);
      await backOnline();
    }
    await page
      .getByText('A saved photo was identified. See History.')
      .waitFor({ timeout: 60_000 })
      .catch(async (error) => {
        await shot(page, '08-reconnect-failed.png');
        throw error;
      });
    assert.equal(await page.getByTestId('offline-banner').count(), 0);
    // The answer, possibly DANGEROUS, replaces the "your photo is saved" card where the person looks.
    await page.getByTestId('verdict-banner').waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('queued-card').count(), 0);
    await context.unroute('**/model/rules');
    await page.close();
  });
});
