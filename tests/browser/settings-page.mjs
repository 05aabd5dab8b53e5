// Drives the settings page in headless Chromium: paste a key, create an API key, read its
// secret from the dialog, prove it works against /v1/account, rotate it (the old one fails),
// delete it. Add a sender domain, read and copy the TXT record it must publish, try to verify
// it, remove it. Also: inline errors, keyboard-only use, phone width, no external fetches.
//
// Env: RELAYKEY_URL (http://127.0.0.1:PORT), RELAYKEY_KEY (a key with view+manage),
//      SCREENSHOT / SCREENSHOT_PHONE (optional PNG paths), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.RELAYKEY_URL;
const key = process.env.RELAYKEY_KEY;
assert.ok(base && key, "RELAYKEY_URL and RELAYKEY_KEY must be set");

async function account(secret) {
  const response = await fetch(`${base}/v1/account`, { headers: { Authorization: `Bearer ${secret}` } });
  return response.status;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in CI containers has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  const foreign = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) foreign.push(r.url());
  });
  const consoleErrors = [];
  // The page's own API refusals (the 400 below is provoked on purpose) are not page errors.
  // So is a 503 from "Verify" when this machine's resolver cannot be reached.
  const expected = /Failed to load resource: the server responded with a status of (40[01]|503)/;
  page.on("console", (m) => m.type() === "error" && !expected.test(m.text()) && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  await page.goto(`${base}/`);
  // Keyboard only: type the key and press Enter.
  await page.focus("#key-input");
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#apikeys-section:not([hidden])");
  assert.equal(await page.textContent("#account-email"), (await (await fetch(`${base}/v1/account`, { headers: { Authorization: `Bearer ${key}` } })).json()).email);
  const before = await page.locator("#apikeys-table tbody tr").count();

  // An error appears inline, in the dialog: a key needs at least one permission.
  await page.click("#new-apikey");
  await page.fill("#apikey-name", "no permissions");
  for (const p of ["smtp", "send", "view", "manage"]) await page.uncheck(`#apikey-form input[value=${p}]`);
  await page.click("#apikey-save");
  await page.waitForSelector("#apikey-dialog .form-error:not([hidden])");
  assert.equal(await page.textContent("#apikey-dialog .form-error"), "an API key needs at least one permission");
  await page.keyboard.press("Escape");

  // Create with the keyboard: focus lands on "Create API key"; Enter opens the dialog with the
  // name field focused; Enter in it submits.
  await page.focus("#new-apikey");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#apikey-dialog[open]");
  await page.keyboard.type("browser test");
  await page.uncheck("#apikey-form input[value=manage]");
  await page.focus("#apikey-name");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#secret-dialog[open]");
  const secret = await page.inputValue("#secret-value");
  assert.match(secret, /^[0-9A-F]{96}$/);
  assert.match(await page.textContent("#secret-warning"), /cannot be shown again/);
  // The copy button puts exactly the secret on the clipboard (it answers asynchronously).
  await page.click("#copy-secret");
  await page.locator("#copy-status", { hasText: "Copied" }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await page.click("#secret-close");
  await page.waitForSelector("#secret-dialog", { state: "hidden" });
  assert.equal(await page.locator("#apikeys-table tbody tr").count(), before + 1);
  assert.ok(!(await page.content()).includes(secret), "the secret is still in the page after the dialog closed");
  const row = page.locator("#apikeys-table tbody tr", { hasText: "browser test" });
  assert.match(await row.locator("td").nth(1).textContent(), new RegExp(`${secret.slice(-5)}$`));
  assert.equal(await row.locator("td").nth(2).textContent(), "smtp, send, view");
  assert.equal(await account(secret), 200, "the new key does not work against /v1/account");

  // Edit its name.
  await row.locator("button.edit").click();
  await page.fill("#apikey-name", "browser test 2");
  await page.click("#apikey-save");
  await page.waitForSelector("#apikey-dialog", { state: "hidden" });
  const row2 = page.locator("#apikeys-table tbody tr", { hasText: "browser test 2" });
  await row2.waitFor();

  // Rotate: the old secret fails at once, the new one works.
  await row2.locator("button.change").click();
  await page.click("#confirm-yes");
  await page.waitForSelector("#secret-dialog[open]");
  const rotated = await page.inputValue("#secret-value");
  assert.match(rotated, /^[0-9A-F]{96}$/);
  assert.notEqual(rotated, secret);
  await page.click("#secret-close");
  assert.equal(await account(secret), 401, "the old key still works after the change");
  assert.equal(await account(rotated), 200);

  // Delete, with confirmation.
  await row2.locator("button.delete").click();
  await page.waitForSelector("#confirm-dialog[open]");
  await page.click("#confirm-yes");
  await page.waitForSelector("#confirm-dialog", { state: "hidden" });
  await row2.waitFor({ state: "detached" });
  assert.equal(await account(rotated), 401, "the deleted key still works");

  // An SMTP credential, for a fuller page (and the screenshot).
  await page.click("#new-smtp");
  await page.fill("#smtp-username", `app-${Date.now()}@example.com`);
  await page.fill("#smtp-allow", "192.0.2.0/24");
  await page.click("#smtp-save");
  await page.waitForSelector("#secret-dialog[open]");
  assert.match(await page.inputValue("#secret-value"), /^[0-9A-F]{40}$/);
  await page.click("#secret-close");
  await page.locator("#smtp-table tbody tr", { hasText: "192.0.2.0/24" }).first().waitFor();

  // Sender domains: the account's own address is there, verified; a domain added here is
  // pending and shows the TXT record to publish, which the copy button puts on the clipboard.
  const email = await page.textContent("#account-email");
  await page.locator(`#senders-table tr[data-entry="${email}"] .status-verified`).waitFor();
  const domain = `browser-${Date.now()}.example`;
  await page.click("#new-sender");
  await page.waitForSelector("#sender-dialog[open]");
  await page.keyboard.type(domain);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#sender-dialog", { state: "hidden" });
  const senderRow = page.locator(`#senders-table tr[data-entry="${domain}"]`);
  await senderRow.waitFor();
  assert.equal(await senderRow.locator(".status-pending").textContent(), "Pending");
  assert.equal(await senderRow.locator(".record-name").textContent(), `_relaykey.${domain}`);
  assert.equal(await senderRow.locator(".record-type").textContent(), "TXT");
  const txt = await senderRow.locator(".record-value").textContent();
  assert.match(txt, /^relaykey-verify=[0-9a-f]{32}$/);
  const listed = await (await fetch(`${base}/v1/senders`, { headers: { Authorization: `Bearer ${key}` } })).json();
  assert.equal(listed.find((s) => s.entry === domain).dns.value, txt, "the page shows another record than the API");
  // After adding, focus is on the copy button: Enter copies.
  await page.keyboard.press("Enter");
  await page.locator("#senders-status", { hasText: "clipboard" }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), txt);
  // Nothing is published under .example: verifying leaves it pending (or the resolver is away).
  await senderRow.locator("button.verify").click();
  await page.locator("#senders-status:has-text('not verified yet'), #error:not([hidden])").first().waitFor();
  assert.equal(await senderRow.locator(".status-pending").textContent(), "Pending");
  // Every record the domain publishes (GET /v1/senders/{domain}/dns), each with a copy button:
  // the verification TXT and the suggested SPF record (no DKIM key yet).
  await senderRow.locator("button.dns-records").click();
  await page.waitForSelector("#dns-panel:not([hidden])");
  const dnsNames = await page.locator("#dns-list .dns-record-name").allTextContents();
  assert.deepEqual(dnsNames, [`_relaykey.${domain}`, domain]);
  assert.equal(await page.locator("#dns-list .dns-record-value").first().textContent(), txt);
  assert.match(await page.locator("#dns-list .dns-record-value").last().textContent(), /^v=spf1 .* ~all$/);
  await page.locator("#dns-list button.copy-dns-record").last().click();
  await page.locator("#senders-status", { hasText: "SPF" }).waitFor();
  assert.match(await page.evaluate(() => navigator.clipboard.readText()), /^v=spf1 /);
  // An address cannot be added through the API: the error stays in the dialog.
  await page.click("#new-sender");
  await page.fill("#sender-domain", "someone@example.org");
  await page.click("#sender-save");
  await page.waitForSelector("#sender-dialog .form-error:not([hidden])");
  assert.match(await page.textContent("#sender-dialog .form-error"), /only domains/);
  await page.keyboard.press("Escape");
  // A second domain stays for the screenshot; the first is removed, with confirmation.
  await page.click("#new-sender");
  await page.fill("#sender-domain", `mail-${Date.now()}.example`);
  await page.click("#sender-save");
  await page.waitForSelector("#sender-dialog", { state: "hidden" });
  await senderRow.locator("button.delete").click();
  await page.waitForSelector("#confirm-dialog[open]");
  await page.click("#confirm-yes");
  await senderRow.waitFor({ state: "detached" });

  // A restricted send-only key, so the screenshot shows a restriction and a permission subset.
  await page.click("#new-apikey");
  await page.fill("#apikey-name", "CI deploy");
  for (const p of ["smtp", "view", "manage"]) await page.uncheck(`#apikey-form input[value=${p}]`);
  await page.fill("#apikey-allow", "203.0.113.0/24\n198.51.100.7");
  await page.click("#apikey-save");
  await page.waitForSelector("#secret-dialog[open]");
  await page.click("#secret-close");
  await page.locator("#apikeys-table tbody tr", { hasText: "CI deploy" }).waitFor();

  if (process.env.SCREENSHOT) {
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  }

  // Phone width: nothing overflows sideways.
  await page.setViewportSize({ width: 360, height: 780 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page overflows a phone-width screen by ${overflow}px`);
  if (process.env.SCREENSHOT_PHONE) {
    await page.screenshot({ path: process.env.SCREENSHOT_PHONE, fullPage: true });
  }
  // Keyboard only on the phone layout too: Tab reaches a row's Edit button and Enter opens it.
  await page.focus("#new-smtp");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#smtp-dialog[open]");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#smtp-dialog", { state: "hidden" });

  assert.deepEqual(foreign, [], "the page fetched from another origin");
  assert.deepEqual(consoleErrors, [], "the page logged errors");
  console.log("settings page: ok");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
