// The web UI in a real browser (Debian's chromium, driven by playwright-core)
// against a real `modelseal up` (embedded stack: swtpm, development attestation,
// the built-in key service, a local store) started here on a free port with a
// fresh state directory. Walks the owner → consumer → verifier sequence, checks
// the refusals (wrong PCR, viewer token), runs axe-core on every tab, and writes
// screenshots (desktop and narrow) to MODELSEAL_UI_OUT.
//
// Needs MODELSEAL_BIN (ctest sets it), web/dist (scripts/setup.d/50-web.sh) and
// web/node_modules (npm ci in web/). Run: node --test tests/web/ui.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.MODELSEAL_BIN ?? path.join(ROOT, 'build/src/cli/modelseal');
const webRoot = process.env.MODELSEAL_WEB_ROOT ?? path.join(ROOT, 'web/dist');
const outDir = process.env.MODELSEAL_UI_OUT ?? path.join(ROOT, 'build/tests/web/screenshots');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WAIT = 10 * 60 * 1000; // generous: a slow machine, never a measure of speed

assert.ok(existsSync(bin), `no modelseal executable at ${bin}: build it, or set MODELSEAL_BIN`);
assert.ok(existsSync(path.join(webRoot, 'index.html')), `no built UI in ${webRoot}: run scripts/setup.d/50-web.sh (or npm --prefix web run build)`);
assert.ok(existsSync(chromiumPath), `no browser at ${chromiumPath}: apt-get install chromium`);
const webRequire = createRequire(path.join(ROOT, 'web/package.json'));
const { chromium } = webRequire('playwright-core');
const axeSource = readFileSync(webRequire.resolve('axe-core/axe.min.js'), 'utf8');

let state, server, base, browser, serverLog = '';
const tokens = {};

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  mkdirSync(outDir, { recursive: true });
  state = mkdtempSync(path.join(tmpdir(), 'modelseal-ui-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ['up', '--state', state, '--listen', `127.0.0.1:${port}`, '--kms-listen', '127.0.0.1:0',
    '--web-root', webRoot, '--threads', '1', '--no-resume'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MODELSEAL_STATE_DIR: state, AWS_EC2_METADATA_DISABLED: 'true', HF_HUB_OFFLINE: '1' },
  });
  let exit;
  server.on('exit', (code, signal) => { exit = { code, signal }; });
  const collect = (d) => {
    serverLog += d;
    for (const m of String(serverLog).matchAll(/\b(ms_(owner|consumer|viewer)_[A-Za-z0-9_-]{20,})/g)) tokens[m[2]] = m[1];
  };
  server.stdout.on('data', collect);
  server.stderr.on('data', collect);
  for (;;) {
    if (exit) throw new Error(`modelseal up exited (${exit.code ?? exit.signal}):\n${serverLog}`);
    try {
      const r = await fetch(`${base}/ms/v1/health`);
      if (r.ok && tokens.owner && tokens.consumer && tokens.viewer) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => { server.on('exit', r); setTimeout(r, 30000); });
  }
  if (state) rmSync(state, { recursive: true, force: true });
});

// A page signed in with the token of `role`; console errors are collected.
async function signedIn(role, viewport = { width: 1400, height: 950 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) page.errors.push(m.text()); });
  await page.goto(`${base}/`);
  await page.getByLabel('API token', { exact: true }).fill(tokens[role]);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByTestId('role').filter({ hasText: role }).waitFor();
  return page;
}

async function open(page, route) {
  await page.evaluate((r) => { location.hash = r; }, `/${route}`);
  await page.waitForFunction((r) => location.hash === r, `#/${route}`);
}

// A screenshot of the whole page, which must not scroll sideways.
async function shot(page, name) {
  await page.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `${name}: the page scrolls sideways by ${overflow}px`);
}

// axe-core on the page as it is: no serious or critical violation.
async function axe(page, name) {
  // Evaluated over the DevTools protocol: the page's Content-Security-Policy (which
  // forbids inline scripts) stays in force for the UI itself.
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${name}: accessibility violations:\n${JSON.stringify(bad, null, 2)}`);
}

const HEX96 = /^[0-9a-f]{96}$/;

test('a wrong token is refused with what to do', async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 950 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await axe(page, 'token prompt');
  await page.getByLabel('API token', { exact: true }).fill('ms_owner_not-a-real-token-at-all-xxxxxxxxxxxxxxxxx');
  await page.getByRole('button', { name: 'Continue' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /not valid/);
  assert.match(await alert.innerText(), /What to do/);
  await shot(page, 'token-prompt-refused');
  await context.close();
});

test('owner: publish the generated test model, refresh, set a PCR4 + PCR7 policy, check the verdict', async () => {
  const page = await signedIn('owner');
  await open(page, 'about');
  await page.getByRole('img', { name: /sealed model travels/ }).waitFor();
  await axe(page, 'about');
  await shot(page, 'about');
  // The section tabs work from the keyboard: arrow keys move and select.
  await page.getByRole('tab', { name: 'About' }).focus();
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => location.hash.startsWith('#/owner'));
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Model owner');

  // Model manager: process the test model, following its progress.
  await open(page, 'owner/manager');
  await page.getByLabel('Model name', { exact: true }).fill('tiny');
  await page.getByLabel('Generated test model', { exact: true }).check();
  await axe(page, 'owner/manager');
  await page.getByTestId('process-model').click();
  const job = page.getByTestId('publish-job');
  await job.waitFor();
  await page.locator('[data-testid=publish-job][data-state=succeeded]').waitFor({ timeout: WAIT });
  for (const step of ['data-key', 'seal', 'upload', 'manifest']) {
    assert.equal(await job.locator(`[data-step="${step}"]`).getAttribute('data-status'), 'done', `publish step ${step}`);
    assert.match(await job.locator(`[data-step="${step}"] [data-testid="step-seconds"]`).innerText(), /^\d+(\.\d)? (ms|s)$/,
      `publish step ${step} shows its time`);
  }
  assert.equal(await job.getByRole('progressbar', { name: 'Upload progress' }).getAttribute('aria-valuenow'), '100');
  const objectName = await job.locator('code[data-value$=".msealed"]').getAttribute('data-value');
  assert.match(objectName, /^tiny\..+\.msealed$/);
  await shot(page, 'owner-manager-published');

  // Published models: refresh shows it with its digests.
  await open(page, 'owner/published');
  await page.getByTestId('refresh-published').click();
  const row = page.locator('tr[data-model="tiny"]');
  await row.waitFor();
  const digests = await row.locator('code[data-value]').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
  assert.ok(digests.some((d) => HEX96.test(d)), `a SHA-384 in ${digests}`);
  await axe(page, 'owner/published');
  await shot(page, 'owner-published');

  // Seal model weights: PCR4 + PCR7 from this machine, add, update, check.
  await open(page, 'owner/seal');
  const policy = page.getByLabel('Policy JSON (you may edit it directly)', { exact: true });
  await policy.waitFor();
  await page.getByRole('button', { name: 'Reset builder' }).click();
  await page.getByRole('button', { name: 'PCR4 + PCR7' }).click();
  for (const i of [4, 7]) assert.match(await page.locator(`#pcr-${i}`).inputValue(), HEX96, `PCR${i} pre-filled`);
  await page.getByTestId('add-statement').click();
  const draft = JSON.parse(await policy.inputValue());
  const attested = draft.Statement.find((s) => s.Sid === 'AttestedDecrypt');
  assert.ok(attested, 'the statement was added');
  assert.deepEqual(Object.keys(attested.Condition.StringEqualsIgnoreCase).sort(),
    ['kms:RecipientAttestation:NitroTPMPCR4', 'kms:RecipientAttestation:NitroTPMPCR7']);
  assert.ok(draft.Statement.some((s) => s.Sid === 'OwnerAdministers'), 'the other statements are kept');
  await axe(page, 'owner/seal');
  await page.getByTestId('update-policy').click();
  await page.getByRole('status').filter({ hasText: 'updated' }).waitFor();
  await page.getByTestId('check-policy').click();
  const verdict = page.getByTestId('verdict');
  await verdict.waitFor();
  assert.equal(await verdict.getAttribute('data-allowed'), 'true', await verdict.innerText());
  await shot(page, 'owner-seal-allowed');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('owner: upload a GGUF file and publish it', async () => {
  const gguf = path.join(state, 'upload-me.gguf');
  execFileSync(bin, ['dev', 'make-test-model', gguf, '--layers', '1', '--dim', '32', '--seed', '3']);
  const page = await signedIn('owner');
  await open(page, 'owner/manager');
  await page.getByLabel('Model name', { exact: true }).fill('uploaded');
  await page.getByLabel('Upload a GGUF', { exact: true }).check();
  // Form fields survive a reload (the token too, for this tab).
  await page.reload();
  await page.getByTestId('role').filter({ hasText: 'owner' }).waitFor();
  assert.equal(await page.getByLabel('Model name', { exact: true }).inputValue(), 'uploaded');
  assert.equal(await page.getByLabel('Upload a GGUF', { exact: true }).isChecked(), true);
  await page.getByLabel('GGUF file', { exact: true }).setInputFiles(gguf);
  await page.getByTestId('process-model').click();
  await page.locator('[data-testid=publish-job]:not([data-state=running])').waitFor({ timeout: WAIT });
  const job = page.getByTestId('publish-job');
  assert.equal(await job.getAttribute('data-state'), 'succeeded', await job.innerText());
  assert.match(await job.innerText(), /Published uploaded/);
  await open(page, 'owner/published');
  await page.locator('tr[data-model="uploaded"]').waitFor();
  // Delete asks first; cancelling keeps the model, confirming removes it.
  await page.getByRole('button', { name: 'Delete uploaded' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('tr[data-model="uploaded"]').count(), 1);
  await page.getByRole('button', { name: 'Delete uploaded' }).click();
  await axe(page, 'owner/published (confirm delete)');
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('status').filter({ hasText: 'Deleted uploaded.' }).waitFor();
  await page.locator('tr[data-model="uploaded"]').waitFor({ state: 'detached' }); // the list reloads
  assert.equal(await page.locator('tr[data-model="tiny"]').count(), 1);
  await page.context().close();
});

test('consumer: load the model, see it with PCR15, chat with a streamed answer', async (t) => {
  const page = await signedIn('consumer');
  await open(page, 'consumer/loaded');
  await page.getByRole('heading', { name: 'No model loaded' }).waitFor();
  await axe(page, 'consumer/loaded (empty)');

  await open(page, 'consumer/loader');
  await page.getByLabel('A published model', { exact: true }).check();
  const select = page.getByLabel('Published model', { exact: true });
  await page.waitForFunction(() => [...document.querySelectorAll('select option')].some((o) => o.value === 'tiny'));
  await select.selectOption('tiny');
  await page.getByRole('button', { name: 'Use published' }).click();
  assert.match(await page.getByLabel('Expected SHA-384 (optional)', { exact: true }).inputValue(), HEX96);
  await axe(page, 'consumer/loader');
  await page.getByTestId('load-model').click();
  await page.locator('[data-testid=load-job]:not([data-state=running])').waitFor({ timeout: WAIT });
  const job = page.getByTestId('load-job');
  assert.equal(await job.getAttribute('data-state'), 'succeeded', await job.innerText());
  for (const step of ['header', 'key-pair', 'attestation', 'key-release', 'download', 'measure', 'engine']) {
    assert.match(await job.locator(`[data-step="${step}"]`).getAttribute('data-status'), /done|skipped/, `load step ${step}`);
  }
  await shot(page, 'consumer-loader-loaded');

  await open(page, 'consumer/loaded');
  await page.getByTestId('refresh-loaded').click();
  const card = page.locator('[data-loaded="tiny"]');
  await card.waitFor();
  const values = await card.locator('code[data-value]').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
  assert.equal(values.filter((v) => HEX96.test(v)).length, 2, 'SHA-384 and PCR15 after');
  assert.notEqual(values[2], '0'.repeat(96), 'PCR15 was extended');
  await axe(page, 'consumer/loaded');
  await shot(page, 'consumer-loaded');

  await open(page, 'consumer/chat');
  // A test model's answer may end after a token or two (its weights are random):
  // ask again in a new chat until one answer has several streamed pieces.
  let pieces = 0;
  let updates = 0;
  for (let attempt = 0; attempt < 8 && pieces < 5; attempt++) {
    if (attempt > 0) await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByLabel('Message', { exact: true }).fill(`Hello, sealed model. (${attempt + 1})`);
    // Record every length the answer's text had on screen while it streamed, and
    // whether the Stop button was there meanwhile.
    await page.evaluate(() => {
      window.__lengths = new Set();
      window.__sawStop = false;
      window.__observer?.disconnect();
      window.__observer = new MutationObserver(() => {
        const answer = [...document.querySelectorAll('.msg[data-role=assistant]')].pop();
        if (answer) window.__lengths.add(answer.innerText.length);
        window.__sawStop ||= Boolean(document.querySelector('[data-testid=stop]'));
      });
      window.__observer.observe(document.body, { subtree: true, characterData: true, childList: true });
    });
    await page.getByTestId('send').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=messages]')?.dataset.streaming === 'false'
      && document.querySelectorAll('.msg[data-role=assistant]').length > 0, null, { timeout: WAIT });
    assert.ok(await page.evaluate(() => window.__sawStop), 'a Stop button while the answer streamed');
    await axe(page, 'consumer/chat');
    pieces = Number(await page.locator('.msg[data-role=assistant]').last().getAttribute('data-pieces') ?? 0);
    updates = await page.evaluate(() => window.__lengths.size);
  }
  assert.ok(pieces >= 5, `an answer of several pieces (last: ${pieces})`);
  // How many of the pieces were painted apart depends on how fast the model is
  // (a test model may answer within one frame): reported, not asserted.
  t.diagnostic(`the answer had ${updates} lengths on screen for ${pieces} streamed pieces`);
  assert.match(await page.getByTestId('log-replay').innerText(), /replays to PCR15/);
  await shot(page, 'consumer-chat');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a policy that wants another PCR7: the loader names the failing step and the PCR', async () => {
  const owner = await signedIn('owner');
  await open(owner, 'owner/seal');
  await owner.getByLabel('Policy JSON (you may edit it directly)', { exact: true }).waitFor();
  await owner.getByRole('button', { name: 'Edit statement AttestedDecrypt' }).click();
  await owner.locator('#pcr-7').fill('ab'.repeat(48));
  await owner.getByTestId('add-statement').click();
  await owner.getByTestId('update-policy').click();
  await owner.getByRole('status').filter({ hasText: 'updated' }).waitFor();
  await owner.getByTestId('check-policy').click();
  await owner.locator('[data-testid=verdict][data-allowed=false]').waitFor();
  await shot(owner, 'owner-seal-denied');

  const page = await signedIn('consumer');
  await open(page, 'consumer/loader');
  await page.getByLabel('A published model', { exact: true }).check();
  await page.waitForFunction(() => [...document.querySelectorAll('select option')].some((o) => o.value === 'tiny'));
  await page.getByLabel('Published model', { exact: true }).selectOption('tiny');
  await page.getByLabel('Model name', { exact: true }).fill('tiny-denied');
  await page.getByTestId('load-model').click();
  await page.locator('[data-testid=load-job]:not([data-state=running])').waitFor({ timeout: WAIT });
  const job = page.getByTestId('load-job');
  assert.equal(await job.getAttribute('data-state'), 'failed');
  assert.equal(await job.getAttribute('data-failed-step'), 'key-release');
  assert.equal(await job.locator('[data-step="key-release"]').getAttribute('data-status'), 'failed');
  const failure = page.getByTestId('load-failure');
  assert.match(await failure.innerText(), /Failed at step: Attested key release/);
  const pcr7 = failure.locator('tr[data-pcr-condition$="PCR7"]');
  await pcr7.first().waitFor();
  assert.match(await pcr7.first().innerText(), /differs/);
  await axe(page, 'consumer/loader (denied)');
  await shot(page, 'consumer-loader-denied');

  // Put the working policy back for what follows.
  await owner.getByRole('button', { name: 'This machine' }).last().click();
  await owner.getByTestId('add-statement').click();
  await owner.getByTestId('update-policy').click();
  await owner.getByRole('status').filter({ hasText: 'updated' }).waitFor();
  await owner.context().close();
  await page.context().close();
});

test('viewer: write actions are disabled and say why', async () => {
  const page = await signedIn('viewer');
  const reasonOf = async (testId) => {
    const b = page.getByTestId(testId);
    await b.waitFor();
    assert.equal(await b.isDisabled(), true, `${testId} disabled`);
    const id = await b.getAttribute('aria-describedby');
    return page.locator(`[id="${id}"]`).innerText();
  };
  await open(page, 'owner/manager');
  assert.match(await reasonOf('process-model'), /Needs the owner token — you are signed in as viewer/);
  await axe(page, 'owner/manager (viewer)');
  await shot(page, 'viewer-owner-manager');
  await open(page, 'owner/seal');
  await page.getByLabel('Policy JSON (you may edit it directly)', { exact: true }).waitFor();
  assert.match(await reasonOf('update-policy'), /Needs the owner token/);
  await open(page, 'owner/published');
  const del = page.getByRole('button', { name: 'Delete tiny' });
  await del.waitFor();
  assert.equal(await del.isDisabled(), true);
  await open(page, 'consumer/loader');
  assert.match(await reasonOf('load-model'), /Needs the consumer token — you are signed in as viewer/);
  await shot(page, 'viewer-consumer-loader');
  await open(page, 'consumer/chat');
  assert.match(await reasonOf('send'), /Needs the consumer token/);
  // Forget token: back to the prompt, also after a reload.
  await page.getByRole('button', { name: 'Forget token' }).click();
  await page.getByLabel('API token', { exact: true }).waitFor();
  await page.reload();
  await page.getByLabel('API token', { exact: true }).waitFor();
  await page.context().close();
});

test('attestation: the document verifies, every check passes, the development banner shows', async () => {
  const page = await signedIn('viewer');
  await open(page, 'attestation');
  await page.getByRole('button', { name: 'Random nonce' }).click();
  await page.getByTestId('fetch-attestation').click();
  const doc = page.getByTestId('attestation');
  await doc.waitFor();
  assert.equal(await doc.getAttribute('data-verified'), 'true');
  const outcomes = await doc.locator('[data-check]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-check'), e.getAttribute('data-outcome')]));
  assert.ok(outcomes.length >= 3, `checks: ${JSON.stringify(outcomes)}`);
  // Every check that ran passed; one the server did not ask for (e.g. a maximum
  // age) says so, and is never a failure or "not run".
  for (const [name, outcome] of outcomes) assert.match(outcome, /^(passed|not-requested)$/, `check ${name}`);
  assert.ok(outcomes.filter(([, o]) => o === 'passed').length >= 3, `checks: ${JSON.stringify(outcomes)}`);
  await page.getByTestId('dev-banner').waitFor();
  assert.equal(await doc.locator('tr[data-pcr]').count(), 24);
  assert.equal(await doc.locator('tr.hl[data-pcr]').count(), 4);
  await axe(page, 'attestation');
  await shot(page, 'attestation');
  await page.context().close();
});

test('environment: instance metadata, GPU, system and network views', async () => {
  const page = await signedIn('viewer');
  await open(page, 'environment/instance');
  await page.getByTestId('not-ec2').or(page.getByRole('heading', { name: 'Identity document' })).first().waitFor();
  await axe(page, 'environment/instance');
  await shot(page, 'environment-instance');
  await open(page, 'environment/gpu');
  await page.getByTestId('gpu-reason').or(page.getByTestId('gpu-device')).first().waitFor();
  await axe(page, 'environment/gpu');
  await shot(page, 'environment-gpu');
  await open(page, 'environment/system');
  await page.locator('tr[data-service="tpm"]').waitFor();
  assert.match(await page.locator('tr[data-service="tpm"]').innerText(), /up/);
  // The kernel's huge page policy for shared memory (the models' memfds), as the
  // kernel itself says it.
  const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/shmem_enabled', 'utf8')
    .match(/\[(\w+)\]/)[1];
  assert.equal(await page.getByTestId('shmem-huge-pages').innerText(), thp);
  await axe(page, 'environment/system');
  await shot(page, 'environment-system');
  await open(page, 'environment/network');
  await page.locator('tr[data-check="key service"]').waitFor();
  assert.match(await page.locator('tr[data-check="key service"]').innerText(), /reachable/);
  await axe(page, 'environment/network');
  await shot(page, 'environment-network');
  await open(page, 'environment/system');
  await page.locator('tr[data-service="tpm"]').waitFor();
  assert.equal(await page.getByTestId('processes').count(), 0, 'the viewer sees no process list');
  await page.context().close();

  // The owner sees the processes (this server's first, marked) and the server's log.
  const owner = await signedIn('owner');
  await open(owner, 'environment/system');
  const procs = owner.getByTestId('processes');
  await procs.waitFor();
  const self = procs.locator(`tr[data-pid="${server.pid}"]`);
  assert.match(await self.innerText(), /modelseal/);
  assert.match(await self.innerText(), / up --state /);
  await owner.locator('summary').filter({ hasText: /^server$/ }).click();
  assert.match(await owner.getByLabel('Recent lines of the server log').innerText(),
    /Z modelseal: /);
  await axe(owner, 'environment/system (owner)');
  await shot(owner, 'environment-system-owner');
  await owner.context().close();
});

test('every tab on a narrow window', async () => {
  const page = await signedIn('consumer', { width: 390, height: 844 });
  for (const route of ['about', 'owner/manager', 'owner/seal', 'owner/published', 'consumer/loaded', 'consumer/loader', 'consumer/chat', 'attestation', 'environment/system', 'environment/network']) {
    await open(page, route);
    await page.waitForLoadState('networkidle');
    await axe(page, `${route} (narrow)`);
    await shot(page, `narrow-${route.replace('/', '-')}`);
  }
  await page.context().close();
});
