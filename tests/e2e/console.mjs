// The operator console in a real browser (Debian's chromium driven by playwright-core),
// with an accessibility scan (axe-core: no serious or critical violation) of every page
// in Japanese and English: an operator-admin created with the bootstrap token signs in
// with the one-time password, is sent to the first sign-in's setup, sets a password of
// their own, enrols TOTP from the page (the code computed here from the key the page
// shows), sees the tenants, adds an operator, issues an API token that then works
// against the management API, terminates a second tenant from its page (the purge runs
// and its signed record is listed), filters and downloads the work log and checks every
// event chain, creates a tenant and changes its contract, runs a job and sees the
// capacity, asks to delete an operator once a second
// operator-admin exists (two-person rule) — who signs in for the first time and approves
// it — signs out and signs in again with a TOTP code. Started by
// crates/kura-server/tests/console_browser.rs, which passes:
//   KURA_MANAGEMENT_URL, KURA_OPERATOR_TOKEN  the management listener and bootstrap token
//   KURA_SERVICE_CODE                         the demo tenant's service code
//   KURA_URL, KURA_LOGIN, KURA_PASSWORD       the portal and its demo admin (to see a notice)
//   KURA_SHOTS                                optional: where to write screenshots (docs/console)
import { createHmac } from "node:crypto";
import { request } from "playwright-core";
import { check, finish, look, newPage } from "./browser.mjs";

const { KURA_MANAGEMENT_URL: url, KURA_OPERATOR_TOKEN: bootstrap, KURA_SERVICE_CODE: serviceCode } = process.env;
const { KURA_URL: portalUrl, KURA_LOGIN: portalLogin, KURA_PASSWORD: portalPassword } = process.env;

/// RFC 6238 with SHA-1, six digits, 30 s: the code an authenticator app would show.
function totp(secret, time = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) key.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 30000)));
  const digest = createHmac("sha1", Buffer.from(key)).update(counter).digest();
  const offset = digest[digest.length - 1] & 15;
  return ((digest.readUInt32BE(offset) & 0x7fffffff) % 1000000).toString().padStart(6, "0");
}


// The first operator-admin, made with the bootstrap token as `kura-server operator create` would.
const api = await request.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { Authorization: `Bearer ${bootstrap}` } });
const created = await api.post(`${url}/api/v1/operator/operators`, { data: { login: "sato", role: "operator-admin" } });
check(created.status() === 201, `operator created: ${created.status()}`);
const oneTime = (await created.json()).password;
const password = "a console passphrase of our admin 2026";
let secret = "";
let lastStep = 0;
let suzukiOneTime = "";

/// A code the server has not seen used: for the next 30-second step, waiting for the
/// clock when that step was used already (a code works once; one step ahead is accepted).
async function freshCode() {
  for (;;) {
    const step = Math.floor(Date.now() / 30000) + 1;
    if (step > lastStep) {
      lastStep = step;
      return totp(secret, step * 30000);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

{
  const page = await newPage("ja");
  await page.goto(`${url}/`);
  check(page.url().includes("/login"), `an anonymous visit goes to sign-in, not ${page.url()}`);
  await look(page, "login", "ja");
  await page.fill("#login", "sato");
  await page.fill("#password", "wrong wrong wrong");
  await page.click("form[action='/login'] button[type=submit]");
  const error = await page.textContent("#login-error");
  check(error && error.includes("パスワードが正しくない"), `wrong password message: ${error}`);

  // The first sign-in goes to the setup and nowhere else.
  await page.fill("#login", "sato");
  await page.fill("#password", oneTime);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForURL(`${url}/setup`);
  await look(page, "setup", "ja");
  await page.goto(`${url}/operators`);
  check(page.url().endsWith("/setup"), `before the setup every page leads to it, not ${page.url()}`);
  await page.fill("#current_password", oneTime);
  await page.fill("#new_password", password);
  await page.fill("#confirm_password", password);
  await page.click("form[action='/setup/password'] button[type=submit]");
  await page.waitForURL(`${url}/setup`);
  check((await page.textContent("main")).includes("完了"), "the password step is done");
  await page.click("form[action='/setup/totp'] button[type=submit]");
  await page.waitForLoadState();
  check(await page.locator(".qr svg").count() === 1, "the QR code is drawn");
  await look(page, "setup-totp", "ja");
  secret = (await page.textContent("#totp-secret")).trim();
  lastStep = Math.floor(Date.now() / 30000);
  await page.fill("#totp-code", totp(secret, lastStep * 30000));
  await page.click("form[action='/setup/totp/confirm'] button[type=submit]");
  await page.waitForURL(`${url}/`);

  // The tenants.
  const tenants = await page.textContent("#tenants");
  check(tenants.includes(serviceCode), `the demo tenant is listed: ${tenants}`);
  check(tenants.includes("利用中"), "its status reads 利用中");
  await look(page, "tenants", "ja");

  // A maintenance notice for every tenant, in both languages.
  await page.goto(`${url}/notices`);
  await page.selectOption("#notice-kind", "maintenance");
  await page.fill("#notice-title-ja", "ストレージの定期メンテナンス");
  await page.fill("#notice-body-ja", "ディスクを交換します。\nメンテナンス中のバックアップは待機し、終了後に自動で再開します。");
  await page.fill("#notice-title-en", "Scheduled storage maintenance");
  await page.fill("#notice-body-en", "We replace disks.\nBackups during the window wait and resume on their own afterwards.");
  const soon = new Date(Date.now() + 3 * 86400000);
  const day = soon.toISOString().slice(0, 10);
  await page.fill("#notice-starts", `${day}T01:00`);
  await page.fill("#notice-ends", `${day}T05:00`);
  await page.check("input[name=audience][value=all]");
  await look(page, "notices", "ja");
  await page.click("form[action='/notices'] button[type=submit]");
  await page.waitForURL(/\/notices\/[0-9a-f]{32}$/);
  check((await page.textContent("main")).includes("お知らせを掲載しました"), "the notice is published");
  await look(page, "notice", "ja");

  // An operator is added; the one-time password is shown once.
  await page.goto(`${url}/operators`);
  await page.fill("#operator-login", "tanaka");
  await page.selectOption("#operator-role", "operator");
  await page.click("form[action='/operators'] button[type=submit]");
  await page.waitForLoadState();
  const shown = (await page.textContent("#one-time-password")).trim();
  check(shown.length >= 12, `a one-time password is shown: ${shown}`);
  check((await page.textContent("#operators")).includes("初回サインイン待ち"), "tanaka waits for the first sign-in");
  await look(page, "operators", "ja");

  // A token for a script, which then works against the management API.
  await page.goto(`${url}/account`);
  await page.fill("#token-name", "monitoring");
  await page.selectOption("#token-role", "operator");
  await page.click("form[action='/account/tokens'] button[type=submit]");
  await page.waitForLoadState();
  const token = (await page.textContent("#new-token")).trim();
  check(token.startsWith("kura_op_"), `token shown once: ${token}`);
  await look(page, "account", "ja");
  const script = await request.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { Authorization: `Bearer ${token}` } });
  const listed = await script.get(`${url}/api/v1/operator/tenants`);
  check(listed.status() === 200, `the token lists tenants: ${listed.status()}`);
  const refused = await script.post(`${url}/api/v1/operator/operators`, { data: { login: "x-1", role: "operator" } });
  check(refused.status() === 403, `an operator token may not add operators: ${refused.status()}`);

  // A second tenant ends its contract: terminated from its page with no grace, so its
  // purge runs at once and leaves a signed deletion record.
  const ended = await api.post(`${url}/api/v1/operator/tenants`, {
    data: { service_code: "KAIYAKU-01", name: "解約商事株式会社", quota_bytes: 10 ** 9, max_machines: 2 },
  });
  check(ended.status() === 201, `second tenant created: ${ended.status()}`);
  const endedId = (await ended.json()).tenant_id;
  await page.goto(`${url}/`);
  await page.click(`#tenants a[href='/tenants/${endedId}']`);
  await page.waitForURL(`${url}/tenants/${endedId}`);
  await look(page, "tenant", "ja");
  await page.fill("#purge-days", "0");
  await page.fill("#terminate-confirm", "KAIYAKU-0");
  await page.click(`form[action='/tenants/${endedId}/terminate'] button[type=submit]`);
  await page.waitForLoadState();
  check((await page.textContent("main [role=alert]")).includes("KAIYAKU-01"), "a mistyped code refuses, naming the code");
  await page.fill("#terminate-confirm", "KAIYAKU-01");
  await page.click(`form[action='/tenants/${endedId}/terminate'] button[type=submit]`);
  await page.waitForLoadState();
  check((await page.textContent("#termination")).includes("消去ジョブ"), "the termination shows its purge job");
  for (let i = 0; i < 60 && !(await page.textContent("#termination")).includes("削除証明書"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await page.reload();
  }
  check((await page.textContent("#termination")).includes("削除証明書"), "the purge ran and its record is linked");
  await look(page, "tenant-purged", "ja");
  await page.goto(`${url}/deletions`);
  check((await page.textContent("#deletions")).includes("KAIYAKU-01"), "the deletion record is listed");
  const key = (await page.textContent("#deletion-key")).trim();
  const record = await api.get(`${url}/api/v1/operator/deletions`);
  const [listedRecord] = (await record.json()).filter((r) => r.service_code === "KAIYAKU-01");
  const signed = await (await page.request.get(`${url}/deletions/${listedRecord.id}`)).json();
  check(signed.signature.public_key === key, "the record is signed with the key the page shows");
  await look(page, "deletions", "ja");

  // A second operator-admin: from now on deleting an operator waits for the other one.
  const second = await api.post(`${url}/api/v1/operator/operators`, { data: { login: "suzuki", role: "operator-admin" } });
  check(second.status() === 201, `second operator-admin created: ${second.status()}`);
  suzukiOneTime = (await second.json()).password;
  await page.goto(`${url}/operators`);
  const tanakaRow = page.locator("#operators tr", { hasText: "tanaka" });
  await tanakaRow.locator("form[action$='/delete'] button").click();
  await page.waitForURL(`${url}/operators`);
  check((await page.textContent("main")).includes("承認を依頼しました"), "the deletion waits for approval");
  check((await page.textContent("#operators")).includes("tanaka"), "tanaka is still there");
  await page.goto(`${url}/approvals`);
  check((await page.textContent("#waiting")).includes("tanaka"), "the request is listed");
  check(await page.locator("#waiting form[action$='/approve']").count() === 0, "nobody approves their own request");
  check((await page.textContent("#rule-state")).includes("2"), "the rule is in force with two operator-admins");
  await look(page, "approvals", "ja");

  // The work log: what was just done is in it, filtered; every chain checks out.
  await page.goto(`${url}/work-log`);
  await page.selectOption("#f-action", "operator.account.create");
  await page.click("form.filters button[type=submit]");
  await page.waitForURL(/action=operator.account.create/);
  check((await page.locator("#work-log tbody tr").count()) >= 2, "the filter shows the operators created");
  const download = await page.request.get(url + (await page.getAttribute("a[href*='format=csv']", "href")));
  check((await download.text()).includes(",operator.account.create,"), "the download holds the filtered rows");
  await page.goto(`${url}/work-log`);
  await page.click("form[action='/work-log/verify'] button");
  await page.waitForURL(`${url}/work-log`);
  check((await page.textContent("main")).includes("改ざんなし"), "every chain checks out");
  check((await page.textContent("#work-log")).includes("operator.log.verify"), "the check is in the log");
  await look(page, "work-log", "ja");

  // A new tenant from the console: its first admin and token are shown once.
  await page.goto(`${url}/`);
  await page.click("#new-tenant-link");
  await page.waitForURL(`${url}/tenants/new`);
  await page.fill("#c-code", "SHINKI-01");
  await page.fill("#c-name", "新規物産株式会社");
  await page.fill("#c-quota", "2 TiB");
  await page.fill("#c-machines", "5");
  await page.fill("#c-networks", "198.51.100.0/24");
  await look(page, "tenant-new", "ja");
  await page.click("#new-tenant button[type=submit]");
  await page.waitForLoadState();
  check((await page.textContent("#admin-login")).trim() === "shinki-01-admin", "the first admin is named");
  check((await page.textContent("#admin-password")).trim().length >= 16, "a one-time password is shown");
  check((await page.textContent("#registration-token")).trim().startsWith("kura_reg_"), "a registration token is shown");
  await look(page, "tenant-created", "ja");
  await page.click("#created a.button");
  await page.waitForURL(/\/tenants\/[0-9a-f]{32}$/);
  const shinkiPage = page.url();
  check((await page.textContent("main")).includes("198.51.100.0/24"), "the agent network is in the contract");
  // Change the contract: a size that does not read is refused, the form kept open.
  await page.click("#edit-contract summary");
  await page.fill("#c-quota", "たくさん");
  await page.click("#edit-contract button[type=submit]");
  await page.waitForLoadState();
  check((await page.textContent("main [role=alert]")).includes("たくさん"), "an unreadable size is refused, naming it");
  check(await page.locator("#edit-contract[open]").count() === 1, "the form stays open with what was typed");
  await page.fill("#c-quota", "3 TiB");
  await page.fill("#c-machines", "8");
  await page.click("#edit-contract button[type=submit]");
  await page.waitForURL(shinkiPage);
  check((await page.textContent("main")).includes("契約内容を変更しました"), "the contract is changed");
  check((await page.textContent("main")).includes("3 TiB") || (await page.textContent("main")).includes("3.0 TiB"), "the new quota shows");
  await look(page, "tenant-contract", "ja");

  // Jobs: run a metering of the new tenant now and see it finish; capacity.
  await page.goto(`${url}/jobs`);
  await page.selectOption("#r-kind", "meter");
  await page.selectOption("#r-tenant", { label: "SHINKI-01 — 新規物産株式会社" });
  await page.click("#run-job button[type=submit]");
  await page.waitForURL(`${url}/jobs`);
  check((await page.textContent("main")).includes("実行待ちに追加しました"), "the run is queued");
  for (let i = 0; i < 40 && !(await page.textContent("#jobs tbody tr")).includes("成功"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    await page.reload();
  }
  check((await page.textContent("#jobs tbody tr")).includes("成功"), "the metering run succeeded");
  await page.selectOption("#r-kind", "gc");
  await page.click("#run-job button[type=submit]");
  await page.waitForLoadState();
  check((await page.textContent("main [role=alert]")).includes("テナントを選んでください"), "gc without a tenant is refused, saying why");
  await look(page, "jobs", "ja");
  await page.goto(`${url}/capacity`);
  check((await page.textContent("#quotas")).includes("TiB"), "the quotas sold are summed");
  await look(page, "capacity", "ja");

  // Sign out; sign in again with the password and the next code.
  await page.click("header form[action='/logout'] button");
  await page.waitForURL(/\/login/);
  await page.fill("#login", "sato");
  await page.fill("#password", password);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForLoadState();
  await look(page, "login-totp", "ja");
  await page.fill("#totp", await freshCode());
  await page.click("form[action='/login/totp'] button[type=submit]");
  await page.waitForURL(`${url}/`);
  check((await page.textContent("header")).includes("sato"), "signed in again as sato");
}

// The tenant's side: the banner on the dashboard and the notices page, in the portal.
{
  const page = await newPage("ja");
  await page.goto(`${portalUrl}/login`);
  await page.fill("#login", portalLogin);
  await page.fill("#password", portalPassword);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForURL(`${portalUrl}/`);
  const banner = await page.textContent(".notice-banner");
  check(banner && banner.includes("ストレージの定期メンテナンス"), `the dashboard shows the notice: ${banner}`);
  await look(page, "portal-dashboard-notice", "ja");
  await page.click(".notice-banner a[href='/notices']");
  await page.waitForURL(`${portalUrl}/notices`);
  check((await page.textContent("main")).includes("メンテナンス中のバックアップは待機し"), "the notice's text is shown");
  await look(page, "portal-notices", "ja");
  await page.click("form[action$='/read'] button");
  await page.waitForURL(`${portalUrl}/notices`);
  check(await page.locator("form[action$='/read']").count() === 0, "marked read");

  // A security event reported from the portal.
  await page.goto(`${portalUrl}/support`);
  await page.selectOption("#support-category", "security-event");
  await page.fill("#support-subject", "見覚えのないサインイン");
  await page.fill("#support-body", "203.0.113.9 からのサインインに心当たりがありません。調査をお願いします。");
  await page.click("form[action='/support'] button[type=submit]");
  await page.waitForURL(/\/support\/[0-9a-f]{32}$/);
  check((await page.textContent("main")).includes("お問い合わせを送信しました"), "the request is sent");
  await look(page, "portal-support-request", "ja");

  // Support access for two hours: only now may the console show the tenant's snapshots.
  await page.goto(`${portalUrl}/security`);
  await page.fill("#hours", "2");
  await page.click("button[value='support-grant']");
  await page.waitForLoadState();
  check((await page.textContent("main")).includes("サポートアクセス"), "support access granted");
}

// The second operator-admin signs in for the first time and approves the deletion.
{
  const page = await newPage("en");
  await page.goto(`${url}/login`);
  await page.fill("#login", "suzuki");
  await page.fill("#password", suzukiOneTime);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForURL(`${url}/setup`);
  const suzukiPassword = "another console passphrase 2026";
  await page.fill("#current_password", suzukiOneTime);
  await page.fill("#new_password", suzukiPassword);
  await page.fill("#confirm_password", suzukiPassword);
  await page.click("form[action='/setup/password'] button[type=submit]");
  await page.waitForURL(`${url}/setup`);
  await page.click("form[action='/setup/totp'] button[type=submit]");
  await page.waitForLoadState();
  const suzukiSecret = (await page.textContent("#totp-secret")).trim();
  await page.fill("#totp-code", totp(suzukiSecret));
  await page.click("form[action='/setup/totp/confirm'] button[type=submit]");
  await page.waitForURL(`${url}/`);
  await page.goto(`${url}/approvals`);
  await page.click("#waiting form[action$='/approve'] button");
  await page.waitForURL(`${url}/approvals`);
  check((await page.textContent("main")).includes("Approved and carried out"), "approved and carried out");
  check((await page.textContent("#decided")).includes("suzuki"), "the decision names the approver");
  await look(page, "approvals", "en");
  await page.goto(`${url}/operators`);
  check(!(await page.textContent("#operators")).includes("tanaka"), "tanaka's account is gone");
}

// English: the same pages after the language switch.
{
  const page = await newPage("en");
  await page.goto(`${url}/login`);
  await look(page, "login", "en");
  await page.fill("#login", "sato");
  await page.fill("#password", password);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForLoadState();
  await page.fill("#totp", await freshCode());
  await page.click("form[action='/login/totp'] button[type=submit]");
  await page.waitForURL(`${url}/`);
  check((await page.textContent("#tenants")).includes("Active"), "the status reads Active");
  // Switching the console to Japanese and back keeps English as the language of sato's mail.
  for (const [language, heading] of [["ja", "テナント"], ["en", "Tenants"]]) {
    await page.selectOption("#language-select", language);
    const switched = await page
      .waitForFunction((text) => document.querySelector("h1")?.textContent.trim() === text, heading, { timeout: 10000 })
      .then(() => true, () => false);
    check(switched && page.url() === `${url}/`, `the console reads ${language} after the switch, on the same page`);
  }
  const accounts = await (await api.get(`${url}/api/v1/operator/operators`)).json();
  check(accounts.find((a) => a.login === "sato")?.language === "en", `sato's mail is now in English: ${JSON.stringify(accounts)}`);
  await look(page, "tenants", "en");
  // Under the tenant's grant its snapshots are listed (facts only), the grant named.
  await page.click(`#tenants a:has-text('${serviceCode}')`);
  await page.waitForURL(/\/tenants\/[0-9a-f]{32}$/);
  const snapshots = await page.textContent("main");
  check(snapshots.includes("granted support access"), `the snapshots are shown under the grant: ${snapshots}`);
  check(snapshots.includes("/srv/www") && snapshots.includes("web-01"), `the machine's snapshots are listed: ${snapshots}`);
  await look(page, "tenant-snapshots", "en");
  await page.goto(`${url}/operators`);
  await look(page, "operators", "en");
  await page.goto(`${url}/notices`);
  await look(page, "notices", "en");
  // The tenant's security event waits, flagged; the operator replies and closes it.
  await page.goto(`${url}/support`);
  check((await page.textContent("#requests")).includes("Security event"), "the security event is flagged");
  await look(page, "support", "en");
  await page.locator("#requests a").first().click();
  await page.waitForURL(/\/support\/[0-9a-f]{32}$/);
  await page.fill("#reply-body", "We blocked 203.0.113.9 and reset the sessions of the account. No data was read.");
  await page.click("button[name=close]");
  await page.waitForURL(/\/support\/[0-9a-f]{32}$/);
  check((await page.textContent("main")).includes("Closed"), "the request is closed");
  await look(page, "support-request", "en");
  await page.goto(`${url}/deletions`);
  await look(page, "deletions", "en");
  await page.click("#deletions a[href^='/tenants/']");
  await page.waitForURL(/\/tenants\/[0-9a-f]{32}$/);
  check((await page.textContent("#termination")).includes("Deletion record"), "the purged tenant links its record");
  await look(page, "tenant-purged", "en");
  await page.goto(`${url}/jobs`);
  check((await page.textContent("#jobs")).includes("Metering"), "the job kinds read in English");
  await look(page, "jobs", "en");
  await page.goto(`${url}/capacity`);
  await look(page, "capacity", "en");
  await page.goto(`${url}/tenants/new`);
  await look(page, "tenant-new", "en");
  await page.goto(`${url}/work-log?action=operator.log.verify`);
  check((await page.textContent("#work-log")).includes("Event chains checked"), "the log names its actions in English");
  await look(page, "work-log", "en");
  await page.goto(`${url}/account`);
  check((await page.locator("#sessions tbody tr").count()) >= 1, "the sessions are listed");
  await look(page, "account", "en");
}

await finish("console");
