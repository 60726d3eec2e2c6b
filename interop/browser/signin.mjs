// A real browser signs in through scaiwave-auth -dev: headless Chromium
// (Debian's, never a downloaded one) opens /v1/auth/authorize, signs in as
// alice on the dev IdP's form, lands on the dev app's page, which redeems the
// handoff and shows alice's participant; then once more as bob with the
// page's own PKCE challenge. Screenshots go to SHOT_DIR.
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
  page.on("request", (r) => urls.push(r.url()));
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("response", async (r) => {
    if (r.request().method() === "POST" && new URL(r.url()).pathname === "/v1/auth/login") {
      try {
        const d = (await r.json()).data || {};
        for (const k of ["access_token", "refresh_token", "id_token"]) if (d[k]) tokens.push(d[k]);
      } catch { /* an error answer: nothing to collect */ }
    }
  });

  async function signIn(user, password, start) {
    await start();
    await page.waitForSelector("#username");
    check(new URL(page.url()).pathname === "/dev/idp/authorize", `${user}: /v1/auth/authorize led to the dev IdP's login form`);
    await page.fill("#username", user);
    await page.fill("#password", password);
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/dev/signed-in"),
      page.click("button[type=submit]"),
    ]);
    await page.waitForSelector("#participant:not([hidden])");
  }
  const text = async (id) => (await page.textContent("#" + id)).trim();

  // 1. The banner's one link, as a person would open it.
  await signIn("alice", "alice-password", () => page.goto(base + "/v1/auth/authorize"));
  check((await text("display_name")) === "Alice Example", `the page shows alice's name (got "${await text("display_name")}")`);
  check((await text("email")) === "alice@example.com", "the page shows alice's email");
  check((await text("tenant_id")) === "dev", "the participant is the dev tenant's");
  check((await text("personal_workspace_id")).startsWith("ws-"), "the participant has a personal workspace");
  check(/^Signed in\./.test(await text("status")), `the page says signed in (got "${await text("status")}")`);
  check(!page.url().includes("handoff"), "the page dropped the handoff from its URL");
  const aliceID = await text("participant_id");
  check(aliceID !== "", "the page shows a participant id");
  await page.screenshot({ path: path.join(shots, "signed-in.png"), fullPage: true });
  console.log("screenshot " + path.join(shots, "signed-in.png"));

  // 2. The page's own PKCE sign-in, as bob: the handoff needs the verifier.
  await signIn("bob", "bob-password", () => page.click("#pkce"));
  check((await text("display_name")) === "Bob Example", `with PKCE: the page shows bob's name (got "${await text("display_name")}")`);
  check(/with PKCE/.test(await text("status")), "with PKCE: the page redeemed the handoff with its verifier");
  check((await text("participant_id")) !== aliceID, "bob is another participant");
  check(urls.some((u) => u.startsWith(base + "/v1/auth/authorize?code_challenge=")), "with PKCE: /v1/auth/authorize got the page's code_challenge");
  await page.screenshot({ path: path.join(shots, "signed-in-pkce.png"), fullPage: true });

  check(problems.length === 0, "no script errors and no blocked scripts" + (problems.length ? ": " + problems.join("; ") : ""));

  // 3. A made-up state in the callback is refused in the envelope (the
  // console now logs the 400, which is no script error).
  const resp = await page.goto(base + "/v1/auth/login?code=made-up&state=made-up");
  const body = await resp.json();
  check(resp.status() === 400 && body.error && body.error.code === "SW_BAD_REQUEST", "a made-up state gets 400 SW_BAD_REQUEST");

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
