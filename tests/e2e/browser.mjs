// What the browser tests share: Debian's chromium driven by playwright-core, pages that
// fail the test on a sub-resource error, a console error or a script error, an
// accessibility scan with axe-core (no serious or critical violation) and a screenshot
// per page (when KURA_SHOTS names a directory), and the list of failed checks.
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const shots = process.env.KURA_SHOTS;
const failures = [];

/** Records a failed check (the test goes on, to report every failure at once). */
export function check(condition, message) {
  if (!condition) {
    failures.push(message);
    console.error("FAIL:", message);
  }
}

export const browser = await chromium.launch({
  executablePath: process.env.KURA_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

/** A page in a fresh context asking for `language` (`ja` or `en`). */
export async function newPage(language) {
  // bypassCSP only so that the test can inject axe; the pages' own CSP is checked by the
  // Rust tests.
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    bypassCSP: true,
    locale: language === "ja" ? "ja-JP" : "en-US",
    extraHTTPHeaders: { "Accept-Language": language === "ja" ? "ja,en;q=0.5" : "en" },
    viewport: { width: 1280, height: 860 },
  });
  const page = await context.newPage();
  // Error pages answer 4xx on purpose; a style sheet, script or image must not.
  page.on("response", (response) => {
    if (response.request().resourceType() !== "document" && response.status() >= 400) {
      check(false, `${response.url()} answered ${response.status()}`);
    }
  });
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      check(false, `console error on ${page.url()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => check(false, `script error on ${page.url()}: ${error.message}`));
  return page;
}

/** Scans the page with axe-core and saves a screenshot `NAME-LANGUAGE.png`. */
export async function look(page, name, language) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  for (const violation of result.violations) {
    if (violation.impact === "serious" || violation.impact === "critical") {
      const where = violation.nodes.map((node) => node.target.join(" ")).slice(0, 3).join(", ");
      check(false, `${name} (${language}): ${violation.impact} ${violation.id}: ${violation.help} at ${where}`);
    }
  }
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, `${name}-${language}.png`), fullPage: true });
  }
}

/** Closes the browser and ends the test: `WHAT browser checks passed`, or exit 1. */
export async function finish(what) {
  await browser.close();
  if (failures.length > 0) {
    console.error(`${failures.length} ${what} browser check(s) failed`);
    process.exit(1);
  }
  console.log(`${what} browser checks passed`);
}
