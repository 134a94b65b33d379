// The unsubscribe pages in Debian's chromium, driven by playwright-core:
//   node pages.mjs view  OUTDIR PAGE_URL INVALID_URL   screenshots, axe, no click
//   node pages.mjs click OUTDIR PAGE_URL               click Unsubscribe, axe
// Prints one JSON object: what was seen, axe-core's WCAG 2.1 A/AA
// violations per page, whether a 360-px screen scrolls sideways.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const [mode, outdir, pageUrl, invalidUrl] = process.argv.slice(2);
const viewports = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };

async function axe(page) {
  // through DevTools, not a script tag: the page's CSP (rightly) forbids those
  await page.evaluate(axeSource);
  const r = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
  return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
}

async function open(browser, lang, vp) {
  const ctx = await browser.newContext({
    viewport: viewports[vp], locale: lang, extraHTTPHeaders: { "Accept-Language": lang },
    javaScriptEnabled: true,
  });
  return { ctx, page: await ctx.newPage() };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const out = { mode, pages: {}, screenshots: [] };
try {
  if (mode === "view") {
    for (const lang of ["en", "nl"]) {
      for (const vp of Object.keys(viewports)) {
        const { ctx, page } = await open(browser, lang, vp);
        const resp = await page.goto(pageUrl);
        const shot = path.join(outdir, `page-${lang}-${vp}.png`);
        await page.screenshot({ path: shot, fullPage: true });
        out.screenshots.push(shot);
        out.pages[`page-${lang}-${vp}`] = {
          status: resp.status(),
          lang: await page.getAttribute("html", "lang"),
          heading: await page.textContent("h1"),
          button: await page.textContent("button"),
          purposes: await page.$$eval("fieldset label", (ls) => ls.map((l) => l.textContent)),
          sideways: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth),
          axe: lang === "en" && vp === "desktop" ? await axe(page) : undefined,
        };
        await ctx.close();
      }
    }
    for (const lang of ["en", "nl"]) {
      const { ctx, page } = await open(browser, lang, "phone");
      const resp = await page.goto(invalidUrl);
      const shot = path.join(outdir, `invalid-${lang}-phone.png`);
      await page.screenshot({ path: shot, fullPage: true });
      out.screenshots.push(shot);
      out.pages[`invalid-${lang}`] = {
        status: resp.status(), heading: await page.textContent("h1"), axe: await axe(page),
        sideways: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth),
      };
      await ctx.close();
    }
  } else {
    // keyboard first: the button takes focus with Tab and shows it
    const { ctx, page } = await open(browser, "en", "phone");
    await page.goto(pageUrl);
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
    const outline = await page.evaluate(() => {
      const b = document.querySelector("button");
      b.focus();
      return getComputedStyle(b).outlineStyle;
    });
    await Promise.all([page.waitForNavigation(), page.click("button")]);
    const shot = path.join(outdir, "done-en-phone.png");
    await page.screenshot({ path: shot, fullPage: true });
    out.screenshots.push(shot);
    out.pages.done = {
      heading: await page.textContent("h1"), text: await page.textContent("main"),
      axe: await axe(page), url: page.url(), focused, outline,
      cookies: (await ctx.cookies()).length,
    };
    await ctx.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
