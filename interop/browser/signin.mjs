// A real browser signs in through scaiwave-auth -dev: headless Chromium
// (Debian's, never a downloaded one) opens the landing page, goes to the dev
// app, signs in as alice on the dev IdP's form, and lands back on the dev
// app, which redeems the handoff with its own PKCE verifier and shows
// alice's participant; then bob signs in and out. An attacker's handoff link
// is refused, and a made-up callback gets a readable page. Screenshots go to
// SHOT_DIR.
//
//   SCAIWAVE_BASE=http://127.0.0.1:PORT SHOT_DIR=/tmp/shots node signin.mjs
//
// run.sh starts the service and sets both. Exits non-zero, saying why, on
// the first thing that is not as it should be.

import { chromium } from "playwright-core";
import path from "node:path";

const base = process.env.SCAIWAVE_BASE;
const shots = process.env.SHOT_DIR;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !shots) {
  console.error("signin.mjs: set SCAIWAVE_BASE and SHOT_DIR (run.sh does)");
  process.exit(2);
}

class Failure extends Error {}
function check(ok, what) {
  if (!ok) throw new Failure(what);
  console.log("ok   " + what);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  // Everything the browser asks for, every script error, and every token
  // the service hands out: no token may ever be in a URL.
  const urls = [];
  const problems = [];
  const tokens = [];
  let lastLogin = {};
  page.on("request", (r) => urls.push(r.url()));
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("response", async (r) => {
    if (r.request().method() === "POST" && new URL(r.url()).pathname === "/v1/auth/login") {
      try {
        const d = (await r.json()).data || {};
        if (d.access_token) lastLogin = d;
        for (const k of ["access_token", "refresh_token", "id_token"]) if (d[k]) tokens.push(d[k]);
      } catch { /* an error answer: nothing to collect */ }
    }
  });

  async function signIn(user, password, start) {
    await start();
    await page.waitForSelector("#username");
    check(new URL(page.url()).pathname === "/dev/idp/authorize", `${user}: the dev app's Sign in led to the dev IdP's login form`);
    await page.fill("#username", user);
    await page.fill("#password", password);
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/dev/signed-in"),
      page.click("button[type=submit]"),
    ]);
    await page.waitForSelector("#participant:not([hidden])");
  }
  const text = async (id) => (await page.textContent("#" + id)).trim();
  const logins = () => urls.filter((u) => new URL(u).pathname === "/v1/auth/login").length;

  // 1. The banner's one link, the landing page, as a person would open it;
  // it links the dev app, which starts signed out.
  await page.goto(base + "/");
  check((await page.title()) === "scaiwave-auth development mode", "/ is the development mode's landing page");
  await page.screenshot({ path: path.join(shots, "home.png"), fullPage: true });
  await Promise.all([page.waitForURL((u) => u.pathname === "/dev/signed-in"), page.click("text=Open the dev app")]);
  await page.waitForFunction(() => document.getElementById("status").textContent !== "Loading…");
  check((await text("status")) === "You are not signed in.", `the dev app says not signed in (got "${await text("status")}")`);
  check(!(await page.isVisible("#participant")) && !(await page.isVisible("#signout")), "signed out: no empty participant labels, no sign-out button");
  await page.screenshot({ path: path.join(shots, "signed-out.png"), fullPage: true });

  // 2. The page's own sign-in, as alice: it sends its code_challenge, and
  // redeems the handoff with its verifier.
  await signIn("alice", "alice-password", () => page.click("#signin"));
  check((await text("display_name")) === "Alice Example", `the page shows alice's name (got "${await text("display_name")}")`);
  check((await text("email")) === "alice@example.com", "the page shows alice's email");
  check((await text("tenant_id")) === "dev", "the participant is the dev tenant's");
  check((await text("personal_workspace_id")).startsWith("ws-"), "the participant has a personal workspace");
  check(/^Signed in\./.test(await text("status")), `the page says signed in (got "${await text("status")}")`);
  check(!page.url().includes("handoff"), "the page dropped the handoff from its URL");
  check(urls.some((u) => u.startsWith(base + "/v1/auth/authorize?code_challenge=")), "/v1/auth/authorize got the page's code_challenge");
  const aliceID = await text("participant_id");
  check(aliceID !== "", "the page shows a participant id");
  await page.screenshot({ path: path.join(shots, "signed-in.png"), fullPage: true });
  console.log("screenshot " + path.join(shots, "signed-in.png"));

  // 3. A reload forgets the tokens: signed out, without empty labels (the
  // dl's display:grid once overrode hidden).
  await page.reload();
  await page.waitForFunction(() => document.getElementById("status").textContent !== "Loading…");
  check((await text("status")) === "You are not signed in." && !(await page.isVisible("#participant")), "after a reload: not signed in, no participant shown");

  // 4. Bob signs in, then out: /v1/auth/logout, the IdP's end-session URL,
  // and back to the dev app, which says so; his access token is refused.
  await signIn("bob", "bob-password", () => page.click("#signin"));
  check((await text("display_name")) === "Bob Example", `the page shows bob's name (got "${await text("display_name")}")`);
  check((await text("participant_id")) !== aliceID, "bob is another participant");
  check((await text("signin")) === "Switch account", "signed in: the sign-in button offers another account");
  const bobAccess = lastLogin.access_token;
  await Promise.all([
    page.waitForURL((u) => u.pathname === "/dev/signed-in" && urls.some((x) => new URL(x).pathname === "/dev/idp/logout")),
    page.click("#signout"),
  ]);
  await page.waitForFunction(() => /signed out/.test(document.getElementById("status").textContent));
  check((await text("status")) === "You are signed out. Your tokens were revoked here and at the IdP.", `after Sign out the dev app says so (got "${await text("status")}")`);
  const reg = await fetch(base + "/v1/auth/register", { method: "POST", headers: { Authorization: "Bearer " + bobAccess } });
  check(reg.status === 401, `bob's access token is refused after Sign out (got ${reg.status})`);
  await page.screenshot({ path: path.join(shots, "signed-out-after.png"), fullPage: true });

  check(problems.length === 0, "no script errors and no blocked scripts" + (problems.length ? ": " + problems.join("; ") : ""));

  // 5. Login CSRF: an attacker signs in as himself (here with plain HTTP
  // requests, as his own browser would make them, and his own challenge),
  // keeps the return_to?handoff= link instead of following it, and sends it
  // to the victim. The victim's dev app did not begin that sign-in: it
  // leaves the link alone.
  const manual = { redirect: "manual" };
  const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"; // RFC 7636's example
  const a1 = await fetch(base + "/v1/auth/authorize?code_challenge=" + challenge + "&code_challenge_method=S256", manual);
  const cookie = a1.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const idp = new URL(a1.headers.get("location"));
  const form = new URLSearchParams(idp.searchParams);
  form.set("username", "alice");
  form.set("password", "alice-password");
  const a2 = await fetch(idp.origin + idp.pathname, { ...manual, method: "POST", body: form });
  const a3 = await fetch(a2.headers.get("location"), { ...manual, headers: { Cookie: cookie } });
  const link = new URL(a3.headers.get("location") || "", base).href;
  check(a1.status === 302 && a2.status === 303 && a3.status === 303 && link.includes("handoff="), "the attacker kept his handoff link");
  const before = logins();
  await page.goto(link);
  await page.waitForFunction(() => document.getElementById("status").textContent !== "Loading…");
  check(/did not begin this sign-in/.test(await text("status")), `the victim's dev app refuses a handoff it did not begin (got "${await text("status")}")`);
  check(logins() === before && !(await page.isVisible("#participant")), "the victim's dev app did not redeem it");
  await page.screenshot({ path: path.join(shots, "handoff-refused.png"), fullPage: true });

  // 6. A made-up state in the callback: a page for a person, with a way
  // back to the app, not JSON.
  const resp = await page.goto(base + "/v1/auth/login?code=made-up-code&state=made-up");
  const html = await page.content();
  check(resp.status() === 400 && /text\/html/.test(resp.headers()["content-type"]), "a made-up state gets a 400 page");
  check(html.includes("This sign-in has expired") && !html.includes("made-up-code"), "the page says what happened and does not echo the code");
  check((await page.getAttribute("a.button", "href")) === base + "/dev/signed-in", "the page links back to the app to sign in again");
  await page.screenshot({ path: path.join(shots, "callback-error.png"), fullPage: true });

  check(tokens.length >= 4, `the page received tokens from two redemptions (${tokens.length})`);
  const leaked = urls.filter((u) => tokens.some((t) => u.includes(t)) || /[?&](access_token|id_token|refresh_token)=/.test(u));
  check(leaked.length === 0, `no token in any of the ${urls.length} URLs the browser requested`);
} catch (e) {
  failed = true;
  console.error("FAIL " + (e instanceof Failure ? e.message : e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
