import { chromium, devices } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Debian's Chromium, headless, with nothing that reaches the network on its own. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A Pixel 7 (412 x 915 CSS pixels at 2.625 device pixels each, touch, mobile). */
export function newPhoneContext(browser) {
  const pixel7 = devices['Pixel 7'];
  return browser.newContext({
    ...pixel7,
    viewport: { width: 412, height: 915 },
    screen: { width: 412, height: 915 },
    deviceScaleFactor: 2.625,
    isMobile: true,
    hasTouch: true,
    serviceWorkers: 'allow',
  });
}

/**
 * After `context.setOffline(true)`, makes sure a page that navigated since knows it is offline.
 * Chromium quirk: a navigation that lands in a new renderer process escapes Playwright's offline
 * emulation of `navigator.onLine` (no request gets out, but the page believes it is online).
 * DevTools' own network emulation tells the page, as a phone's radio would.
 */
export async function tellPageOffline(context, page) {
  if (!(await page.evaluate(() => navigator.onLine))) return async () => undefined;
  const cdp = await context.newCDPSession(page);
  const conditions = { latency: 0, downloadThroughput: -1, uploadThroughput: -1 };
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: true, ...conditions });
  // Call with the context back online.
  return async () => {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, ...conditions });
    await cdp.detach();
  };
}
