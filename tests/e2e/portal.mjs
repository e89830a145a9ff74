// The customer portal in a real browser (Debian's chromium driven by playwright-core):
// sign-in, every page in Japanese and English with an accessibility scan (axe-core: no
// serious or critical violation), and the main flow of a new customer — add a machine,
// run the exact `kura register` command the page shows, back up, and see the machine and
// its storage on the pages. Started by crates/kura/tests/portal_browser.rs, which passes:
//   KURA_URL, KURA_LOGIN, KURA_PASSWORD  the portal and the demo admin
//   KURA_BIN                              the `kura` binary
//   KURA_WORK                             a scratch directory
//   KURA_MANAGEMENT_URL, KURA_OPERATOR_TOKEN  the operator API, for a second tenant
//   KURA_SHOTS                            optional: where to write screenshots (docs/portal)
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "playwright-core";
import { check, finish, look, newPage } from "./browser.mjs";

const { KURA_URL: url, KURA_LOGIN: login, KURA_PASSWORD: password, KURA_BIN: kuraBin, KURA_WORK: work } = process.env;
const { KURA_MANAGEMENT_URL: managementUrl, KURA_OPERATOR_TOKEN: operatorToken } = process.env;
let generatedPassword = "";

async function signIn(page, as = login, secret = password) {
  await page.goto(`${url}/`);
  check(page.url().includes("/login"), `an anonymous visit goes to sign-in, not ${page.url()}`);
  await page.fill("#login", as);
  await page.fill("#password", secret);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForURL(`${url}/`);
}

// Japanese: the pages before sign-in, a refused password, then the customer's first day.
{
  const page = await newPage("ja");
  await page.goto(`${url}/login`);
  await look(page, "login", "ja");
  await page.fill("#login", login);
  await page.fill("#password", "not the password at all");
  await page.click("form[action='/login'] button[type=submit]");
  const error = await page.textContent("#login-error");
  check(error && error.includes("パスワードが正しくない"), `wrong password message: ${error}`);
  await look(page, "login-refused", "ja");
  await page.goto(`${url}/forgot-password`);
  await look(page, "forgot-password", "ja");

  await signIn(page);
  await look(page, "dashboard-empty", "ja");

  // Add a machine and run exactly the command the page shows.
  await page.goto(`${url}/machines`);
  await page.click("form[action='/machines/add'] button");
  const command = (await page.textContent("#register-command")).trim();
  check(command.startsWith("kura register --server "), `register command: ${command}`);
  await look(page, "machines-add", "ja");
  const ca = await page.request.get(`${url}/ca.pem`);
  check(ca.ok(), "ca.pem downloads");
  writeFileSync(join(work, "ca.pem"), await ca.body());
  const args = command.split(/\s+/).slice(1).map((word) => (word === "ca.pem" ? join(work, "ca.pem") : word));
  const env = { ...process.env, KURA_CONFIG: join(work, "agent.toml") };
  execFileSync(kuraBin, [...args, "--name", "web-01"], { env, stdio: "inherit" });
  mkdirSync(join(work, "data"), { recursive: true });
  writeFileSync(join(work, "data", "report.txt"), "quarterly figures\n".repeat(50000));
  execFileSync(kuraBin, ["init"], { env, stdio: "inherit" });
  execFileSync(kuraBin, ["backup", join(work, "data")], { env, stdio: "inherit" });

  await page.goto(`${url}/machines`);
  const rows = await page.locator("table tbody tr").count();
  check(rows === 1, `one machine listed, found ${rows}`);
  check((await page.textContent("table tbody")).includes("web-01"), "the registered machine is listed by name");
  await look(page, "machines", "ja");

  // The snapshot is listed; browse down to the file and download it (bytes compared),
  // then its folder as a tar.
  await page.goto(`${url}/snapshots`);
  check(await page.locator("table tbody tr").count() === 1, "one snapshot listed");
  await look(page, "snapshots", "ja");
  await page.locator("table tbody tr a").first().click();
  await page.waitForLoadState();
  for (let depth = 0; depth < 12; depth += 1) {
    if (await page.locator("table tbody td", { hasText: /^report\.txt$/ }).count() > 0) break;
    await page.locator("table tbody td a").first().click();
    await page.waitForLoadState();
  }
  const row = page.locator("table tbody tr", { hasText: "report.txt" });
  check(await row.count() === 1, "report.txt is reached by browsing");
  await look(page, "snapshot", "ja");
  const [fileDownload] = await Promise.all([page.waitForEvent("download"), row.locator("a[download]").click()]);
  const downloaded = readFileSync(await fileDownload.path());
  check(downloaded.equals(readFileSync(join(work, "data", "report.txt"))), "the downloaded file equals the source");
  // Up one level: the folder holding report.txt downloads as a tar that holds it.
  await page.locator(".crumbs a").nth(-2).click();
  await page.waitForLoadState();
  const folderRow = page.locator("table tbody tr", { hasText: "data/" });
  await look(page, "snapshot-folder", "ja");
  const [tarDownload] = await Promise.all([page.waitForEvent("download"), folderRow.locator("a[href*='format=tar']").click()]);
  check(tarDownload.suggestedFilename().endsWith(".tar"), `a folder comes as .tar: ${tarDownload.suggestedFilename()}`);
  const listing = execFileSync("tar", ["-tf", await tarDownload.path()]).toString();
  check(listing.includes("report.txt"), `the tar holds report.txt: ${listing}`);
  // And as a zip, which unzip tests (every CRC) and lists.
  const [zipDownload] = await Promise.all([page.waitForEvent("download"), folderRow.locator("a[href*='format=zip']").click()]);
  check(zipDownload.suggestedFilename() === "data.zip", `a folder comes as data.zip: ${zipDownload.suggestedFilename()}`);
  execFileSync("unzip", ["-tq", await zipDownload.path()]);
  const zipListing = execFileSync("unzip", ["-l", await zipDownload.path()]).toString();
  check(zipListing.includes("data/report.txt"), `the zip holds report.txt: ${zipListing}`);
  // Restore report.txt to the machine: queued now, performed by the daemon below.
  const snapshotPage = page.url().split("?")[0];
  const restoreTarget = join(work, "restored-by-job");
  await page.fill("#restore-target", restoreTarget);
  await page.fill("#restore-paths", join(work, "data", "report.txt"));
  await page.click("form[action$='/restore'] button[type=submit]");
  await page.waitForLoadState();
  check((await page.textContent("main")).includes("リストアを受け付けました"), "the restore job is queued");
  check((await page.textContent("#restore table")).includes("待機中"), "the job is listed, waiting");

  // A protection plan for it, from the form: the list then shows its next run.
  await page.goto(`${url}/plans`);
  await page.fill("#plan-name", "毎晩のバックアップ");
  await page.fill("#plan-sources", join(work, "data"));
  await page.fill("#plan-schedule", "0 2 * * *");
  await page.check("input[name=machines]");
  await page.click("form[action='/plans'] button[type=submit]");
  await page.waitForURL(`${url}/plans`);
  const plansText = await page.textContent("main");
  check(plansText.includes("保護計画「毎晩のバックアップ」を追加しました。") && plansText.includes("web-01"),
    `the plan is added and listed: ${plansText}`);
  await look(page, "plans", "ja");

  // A plan due every minute, run by the agent daemon: its run shows on the plans page,
  // on its own page, on the machines page and on the dashboard; its weekly restore drill
  // passes and is listed.
  await page.fill("#plan-name", "毎分の確認");
  await page.fill("#plan-sources", join(work, "data"));
  await page.fill("#plan-schedule", "* * * * *");
  await page.selectOption("#plan-drill", "weekly");
  await page.check("input[name=machines]");
  await page.click("form[action='/plans'] button[type=submit]");
  await page.waitForURL(`${url}/plans`);
  // And one whose source is missing: its failed run is an alert.
  await page.fill("#plan-name", "移設済みの共有フォルダ");
  await page.fill("#plan-sources", "/srv/kura-e2e-moved-away");
  await page.fill("#plan-schedule", "* * * * *");
  await page.check("input[name=machines]");
  await page.click("form[action='/plans'] button[type=submit]");
  await page.waitForURL(`${url}/plans`);
  const daemon = spawn(kuraBin, ["agent", "run", "--poll", "1", "--state-dir", join(work, "state")],
    { env, stdio: "inherit" });
  let runRow = "";
  let alertsText = "";
  let drillsText = "";
  try {
    // First, the daemon performs the restore job queued from the snapshot page (before
    // the plan's first run, whose retention forgets that snapshot).
    let restoreRow = "";
    for (let tries = 0; tries < 30 && !restoreRow.includes("完了"); tries += 1) {
      await page.goto(snapshotPage);
      restoreRow = await page.textContent("#restore table");
      if (!restoreRow.includes("完了")) await page.waitForTimeout(1000);
    }
    check(restoreRow.includes("完了"), `the restore job succeeded: ${restoreRow}`);
    const restoredFile = join(restoreTarget, work.replace(/^\//, ""), "data", "report.txt");
    check(readFileSync(restoredFile).equals(readFileSync(join(work, "data", "report.txt"))), "the restored file equals the source");
    await page.locator("#restore").scrollIntoViewIfNeeded();
    await look(page, "snapshot-restore", "ja");
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline
      && !(runRow.includes("成功") && alertsText.includes("バックアップ失敗") && drillsText.includes("合格"))) {
      await page.waitForTimeout(2000);
      await page.goto(`${url}/plans`);
      runRow = await page.locator("table").first().locator("tbody tr", { hasText: "毎分の確認" }).textContent();
      drillsText = await page.textContent("section[aria-labelledby=drills-heading]");
      await page.goto(`${url}/alerts`);
      alertsText = await page.textContent("main");
    }
  } finally {
    daemon.kill("SIGTERM");
  }
  check(runRow.includes("成功"), `the daemon ran the plan within the next minute: ${runRow}`);
  check(runRow.includes("リストア訓練: 毎週"), `the plan says it drills weekly: ${runRow}`);
  check(drillsText.includes("合格") && drillsText.includes("毎分の確認"), `the plan's drill passed: ${drillsText}`);
  check(alertsText.includes("バックアップ失敗") && alertsText.includes("移設済みの共有フォルダ")
    && alertsText.includes("kura-e2e-moved-away"), `the failed run is an open alert: ${alertsText}`);
  await look(page, "alerts", "ja");
  await page.goto(`${url}/plans`);
  await look(page, "plans-runs", "ja");
  await page.locator("table tbody a", { hasText: "毎分の確認" }).click();
  await page.waitForLoadState();
  const history = await page.textContent("main");
  check(history.includes("毎分の確認 の最近の実行") && history.includes("スナップショットを開く"),
    `the plan's page lists its run: ${history}`);
  await look(page, "plan-history", "ja");
  await page.goto(`${url}/`);
  check((await page.textContent("main")).includes("保護計画の前回の実行"), "the dashboard lists the plan's last run");
  check((await page.textContent("section.alerts-open")).includes("バックアップ失敗"), "the dashboard lists the open alert");
  await look(page, "dashboard-plans", "ja");

  // Rename it from its row.
  await page.goto(`${url}/machines`);
  const nameField = page.locator("table tbody input[name=name]");
  await nameField.fill("web-01 (東京)");
  await page.locator("table tbody form[action$='/rename'] button").click();
  await page.waitForURL(`${url}/machines`);
  check((await page.textContent("table tbody")).includes("web-01 (東京)"), "renamed");

  await page.goto(`${url}/`);
  const usage = await page.textContent(".figure");
  check(!usage.trim().startsWith("0 B"), `the dashboard counts the backup: ${usage}`);
  check((await page.textContent("main")).includes("マシン名の変更"), "recent events show the rename, by its Japanese name");
  check((await page.textContent("main")).includes("完了"), "the dashboard shows the last backup as complete");
  check(await page.locator("svg.usage-chart path").count() === 1, "the usage chart is drawn");
  await look(page, "dashboard", "ja");

  // The event log: filter by action, then download the filtered range as CSV.
  await page.goto(`${url}/events`);
  await look(page, "events", "ja");
  await page.selectOption("#f-action", "machine.rename");
  await page.click("form.filters button[type=submit]");
  await page.waitForURL(/action=machine.rename/);
  const shown = await page.locator("table.events tbody tr").count();
  check(shown === 1, `one rename in the filtered log, found ${shown}`);
  const [csvDownload] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("a[href*='format=csv']").click(),
  ]);
  const csvLines = readFileSync(await csvDownload.path(), "utf8").trim().split("\r\n");
  check(csvLines.length === 2 && csvLines[1].includes("machine.rename"), `the CSV holds the filtered rows: ${csvLines}`);
  await page.goto(`${url}/contract`);
  await look(page, "contract", "ja");
  await page.click("a[href='/help#roles']");
  await page.waitForURL(`${url}/help#roles`);
  check((await page.textContent("h1")).includes("ご利用マニュアル"), "the manual opens in Japanese");
  check(await page.locator("#roles").count() === 1, "the manual's sections can be linked to");
  await look(page, "help", "ja");

  // Users: add one with a generated password, shown once.
  await page.goto(`${url}/users`);
  await page.fill("#new-login", "demo-operator");
  await page.selectOption("#new-role", "operator");
  await page.click("form[action='/users'] button[type=submit]");
  const generated = (await page.textContent("#new-password")).trim();
  generatedPassword = generated;
  check(generated.length >= 16, `a generated password is shown: ${generated}`);
  check((await page.textContent("table tbody")).includes("demo-operator"), "the new user is listed");
  await look(page, "users", "ja");
  await page.goto(`${url}/security`);
  await look(page, "security", "ja");

  // Two-factor enrolment shows a QR code.
  await page.goto(`${url}/account`);
  await look(page, "account", "ja");
  // Alert mail off, and on again.
  for (const on of [false, true]) {
    await page.setChecked("input[name=alert_mail]", on);
    await page.click("form[action='/account/alert-mail'] button[type=submit]");
    await page.waitForURL(`${url}/account`);
    const said = on ? "アラートメールを受け取る設定にしました。" : "アラートメールを停止しました。";
    check((await page.textContent("main")).includes(said), `the alert mail setting is saved: ${said}`);
    check(await page.isChecked("input[name=alert_mail]") === on, "the box shows the setting");
  }
  await page.click("form[action='/account/totp/enroll'] button");
  check(await page.locator(".qr svg").count() === 1, "a QR code is drawn");
  await look(page, "account-totp", "ja");

  // The language switch (applies on change with JavaScript), kept for the user.
  await page.selectOption("#language-select", "en");
  const english = await page
    .waitForFunction(() => document.querySelector("h1")?.textContent.trim() === "Account", null, { timeout: 10000 })
    .then(() => true, () => false);
  check(english && page.url() === `${url}/account`, "English after the switch, on the same page");
  await page.context().close();
}

// English, from a fresh browser asking for English: the user's choice of English is kept.
{
  const page = await newPage("en");
  await page.goto(`${url}/login`);
  await look(page, "login", "en");
  await page.goto(`${url}/forgot-password`);
  await look(page, "forgot-password", "en");
  await signIn(page);
  await look(page, "dashboard", "en");
  await page.goto(`${url}/machines`);
  await look(page, "machines", "en");
  await page.goto(`${url}/snapshots`);
  await look(page, "snapshots", "en");
  await page.goto(`${url}/contract`);
  await look(page, "contract", "en");
  await page.goto(`${url}/users`);
  await look(page, "users", "en");
  await page.goto(`${url}/security`);
  await look(page, "security", "en");
  await page.goto(`${url}/events`);
  await look(page, "events", "en");
  await page.goto(`${url}/plans`);
  await look(page, "plans", "en");
  await page.locator("table tbody a[href^='/plans/']").first().click();
  await page.waitForLoadState();
  await look(page, "plan-edit", "en");
  await page.goto(`${url}/alerts`);
  check((await page.textContent("main")).includes("Backup failed"), "the alert, in English");
  await look(page, "alerts", "en");
  await page.goto(`${url}/help`);
  await look(page, "help", "en");
  await page.goto(`${url}/account`);
  await page.fill("#token-name", "monitoring");
  await page.selectOption("#token-role", "auditor");
  await page.click("form[action='/account/tokens'] button[type=submit]");
  const token = (await page.textContent("#new-token")).trim();
  check(token.startsWith("kura_api_"), `a new API token is shown once: ${token}`);
  await look(page, "account-token", "en");
  await page.goto(`${url}/no-such-page`);
  await look(page, "not-found", "en");
  await page.context().close();
}

// An encrypted vault (a second tenant): the snapshot page asks for the passphrase, says
// how it is handled, refuses a wrong one, then browses and downloads with the right one.
{
  const operator = await request.newContext({ ignoreHTTPSErrors: true });
  const created = await operator
    .post(`${managementUrl}/api/v1/operator/tenants`, {
      headers: { authorization: `Bearer ${operatorToken}` },
      data: { service_code: "SECRET-0001", name: "暗号株式会社", quota_bytes: 2 ** 30, max_machines: 1 },
    })
    .then((response) => response.json());
  await operator.dispose();
  check(created.admin_login, `a second tenant is created: ${JSON.stringify(created)}`);
  const env = { ...process.env, KURA_CONFIG: join(work, "agent-secret.toml"), KURA_PASSWORD: "correct horse battery staple" };
  execFileSync(kuraBin, ["register", "--server", url, "--token", created.registration_token, "--ca-cert",
    join(work, "ca.pem"), "--name", "db-01"], { env, stdio: "inherit" });
  mkdirSync(join(work, "secret"), { recursive: true });
  writeFileSync(join(work, "secret", "payroll.csv"), "name,amount\n山田,100\n");
  execFileSync(kuraBin, ["init", "--encrypt"], { env, stdio: "inherit" });
  execFileSync(kuraBin, ["backup", join(work, "secret")], { env, stdio: "inherit" });

  const page = await newPage("ja");
  await signIn(page, created.admin_login, created.admin_password);
  await page.goto(`${url}/snapshots`);
  await page.locator("table tbody tr a").first().click();
  await page.waitForLoadState();
  check((await page.textContent("main")).includes("保存や記録はされません"), "the passphrase note says it is neither stored nor logged");
  check(await page.locator("table tbody").count() === 0, "nothing is listed before the passphrase");
  await look(page, "snapshot-locked", "ja");
  await page.fill("#passphrase", "wrong horse");
  await page.click("form.stack button[type=submit]");
  await page.waitForLoadState();
  check(await page.locator(".error[role=alert]").count() === 1, "a wrong passphrase is refused with a message");
  await page.fill("#passphrase", "correct horse battery staple");
  await page.click("form.stack button[type=submit]");
  await page.waitForLoadState();
  for (let depth = 0; depth < 12; depth += 1) {
    if (await page.locator("table tbody td", { hasText: /^payroll\.csv$/ }).count() > 0) break;
    await page.locator("table tbody td form button.link").first().click();
    await page.waitForLoadState();
  }
  const row = page.locator("table tbody tr", { hasText: "payroll.csv" });
  check(await row.count() === 1, "payroll.csv is reached by browsing with the passphrase");
  await look(page, "snapshot-unlocked", "ja");
  const [download] = await Promise.all([page.waitForEvent("download"), row.locator("form button").click()]);
  check(readFileSync(await download.path()).equals(readFileSync(join(work, "secret", "payroll.csv"))),
    "the file downloaded from the encrypted vault equals the source");
  check(!page.url().includes("passphrase") && !(await page.content()).includes("wrong horse"),
    "the passphrase is in no URL, and a refused one is not kept");
  await page.context().close();
}

// The operator added above sees no user administration: not offered, and refused.
{
  const page = await newPage("en");
  await page.goto(`${url}/login`);
  await page.fill("#login", "demo-operator");
  await page.fill("#password", generatedPassword);
  await page.click("form[action='/login'] button[type=submit]");
  await page.waitForURL(`${url}/`);
  check(await page.locator("nav a[href='/users']").count() === 0, "no Users entry for an operator");
  const refused = await page.goto(`${url}/users`);
  check(refused.status() === 403, `an operator gets 403 for /users, not ${refused.status()}`);
  await look(page, "forbidden", "en");
  // Sign out: back to the sign-in page, and the dashboard is closed again.
  await page.goto(`${url}/`);
  await page.click("form[action='/logout'] button");
  await page.waitForURL(/\/login/);
  await page.goto(`${url}/`);
  check(page.url().includes("/login"), "signed out");
  await page.context().close();
}

await finish("portal");
