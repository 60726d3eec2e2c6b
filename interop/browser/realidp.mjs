// Headless Chromium (Debian's, driven by playwright-core) signs in through
// scaiwave-auth's browser sign-in against a real OpenID provider: it opens
// /v1/auth/authorize with a PKCE challenge, fills in the provider's own
// login page (and presses its consent button) as a person would, follows
// the provider back to the service's callback and on to return_to with a
// handoff, then redeems the handoff with its verifier (POST /v1/auth/login)
// and registers (POST /v1/auth/register) with the access token.
//
//   SCAIWAVE_BASE=… RETURN_TO=… IDP_USERNAME=… IDP_PASSWORD=… node realidp.mjs
//
// interop/scenario_test.go (step browser_chromium) runs it. On success the
// last stdout line is {"display_name":…,"email":…,"pages":[…]}; no token,
// code or handoff is ever printed. Exits non-zero, saying why, otherwise.

import crypto from "node:crypto";
import { chromium } from "playwright-core";

const base = process.env.SCAIWAVE_BASE;
const returnTo = process.env.RETURN_TO;
const username = process.env.IDP_USERNAME;
const password = process.env.IDP_PASSWORD;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !returnTo || !username || !password) {
  console.error("realidp.mjs: set SCAIWAVE_BASE, RETURN_TO, IDP_USERNAME and IDP_PASSWORD");
  process.exit(2);
}

const verifier = crypto.randomBytes(32).toString("base64url");
const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
const pathOf = (u) => { const x = new URL(u); return x.origin + x.pathname; };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let failed = false;
try {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(15000);
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));

  const start = `${base}/v1/auth/authorize?` + new URLSearchParams({ return_to: returnTo, code_challenge: challenge, code_challenge_method: "S256" });
  await page.goto(start);
  const pages = [];
  // Each provider page: fill what a person fills, press the submit button.
  for (let i = 0; i < 6 && !page.url().startsWith(returnTo); i++) {
    pages.push(pathOf(page.url()));
    const pw = page.locator("input[type=password]:visible");
    if (await pw.count()) {
      const user = page.locator("input:visible:not([type=password]):not([type=hidden]):not([type=checkbox]):not([type=submit])").first();
      if (await user.count()) await user.fill(username);
      await pw.first().fill(password);
    }
    const submit = page.locator("button[type=submit]:visible, input[type=submit]:visible, button:not([type]):visible").first();
    if (!(await submit.count())) throw new Error(`no button to press on ${pathOf(page.url())}: ${(await page.textContent("body")).trim().slice(0, 200)}`);
    const before = page.url();
    await Promise.all([page.waitForURL((u) => u.href !== before), submit.click()]);
    await page.waitForLoadState();
  }
  if (!page.url().startsWith(returnTo)) throw new Error(`not back at return_to after ${pages.length} pages: at ${pathOf(page.url())}`);
  const landed = new URL(page.url());
  const handoff = landed.searchParams.get("handoff");
  if (!handoff) throw new Error(`return_to reached without a handoff (error=${landed.searchParams.get("error")})`);

  const post = async (path, body, bearer) => {
    const r = await fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(bearer && { authorization: "Bearer " + bearer }) },
      body: body && JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(j.error || {})}`);
    return j.data;
  };
  const tokens = await post("/v1/auth/login", { handoff, code_verifier: verifier });
  const participant = await post("/v1/auth/register", null, tokens.access_token);

  const secrets = [handoff, tokens.access_token, tokens.refresh_token, tokens.id_token].filter(Boolean);
  const leaked = urls.filter((u) => secrets.slice(1).some((t) => u.includes(t)) || /[?&#](access_token|id_token|refresh_token)=/.test(u));
  if (leaked.length) throw new Error(`${leaked.length} of the URLs the browser requested carried a token`);
  console.log(JSON.stringify({ display_name: participant.display_name, email: participant.email, pages }));
} catch (e) {
  failed = true;
  console.error("FAIL " + (e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
