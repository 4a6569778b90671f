// Loads the agent's status page in headless Chromium (Debian `chromium`,
// driven by playwright-core) and prints what a person would see, as JSON on
// stdout: console errors, page errors, the scripts in the document, whether
// any injected code ran, the visible text; saves a full-page screenshot.
// Usage: node status_page.mjs <url> <screenshot.png> <fresh user-data-dir>
import { chromium } from "playwright-core";

const [url, screenshot, userDataDir] = process.argv.slice(2);
if (!url || !screenshot || !userDataDir) {
  console.error("usage: status_page.mjs <url> <screenshot.png> <user-data-dir>");
  process.exit(2);
}

// Chromium reaches for the network at start unless told not to; the tests
// send traffic to loopback only.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
  ],
  viewport: { width: 1280, height: 900 },
  timeout: 60000,
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  const pageErrors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("request", (r) => requests.push(r.url()));
  const response = await page.goto(url, { waitUntil: "load", timeout: 30000 });
  const result = await page.evaluate(() => ({
    title: document.title,
    scripts: document.querySelectorAll("script").length,
    injectedImages: document.querySelectorAll("img").length,
    pwned: typeof window.__nv_pwned === "undefined" ? null : window.__nv_pwned,
    text: document.body.innerText,
    headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
    timelineMarks: document.querySelectorAll(".track .mark").length,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(
    JSON.stringify({
      status: response.status(),
      csp: response.headers()["content-security-policy"] ?? null,
      consoleErrors,
      pageErrors,
      requests,
      ...result,
    }),
  );
} finally {
  await context.close();
}
