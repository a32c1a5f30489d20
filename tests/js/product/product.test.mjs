// End to end on the embedded stack: `modelseal up`, then the owner publishes and
// sets the policy, the consumer loads and chats, with the CLI, the product API and
// the official `ollama` and `openai` clients. Expected values come from outside
// modelseal: digests from Node's crypto over the model file, PCRs from tpm2-tools'
// tpm2_pcrread, the key service's decisions from its audit log.
// Needs MODELSEAL_BIN (the modelseal executable); ctest sets it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { KMSClient, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { upRssAnon } from './up_memory.mjs';

const bin = process.env.MODELSEAL_BIN;
assert.ok(bin, 'MODELSEAL_BIN must name the modelseal executable');

let dir, state, up, base, tokens, modelFile, modelSha384, imds;

// EC2's instance metadata service as AWS documents it (IMDSv2: a session token from
// PUT /latest/api/token, required on every GET).
const IDENTITY = {
  accountId: '210987654321', architecture: 'x86_64', availabilityZone: 'us-east-2b',
  imageId: 'ami-0abcdef1234567890', instanceId: 'i-0123456789abcdef0', instanceType: 'g5.xlarge',
  pendingTime: '2026-11-30T10:00:00Z', privateIp: '10.0.1.23', region: 'us-east-2', version: '2017-09-30',
};
const IAM_INFO = {
  Code: 'Success', LastUpdated: '2026-11-30T10:05:00Z',
  InstanceProfileArn: 'arn:aws:iam::210987654321:instance-profile/modelseal-consumer',
  InstanceProfileId: 'AIPAEXAMPLEPROFILEID',
};
function startImds() {
  const token = 'imds-session-token';
  const server = createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) { res.writeHead(400); res.end(); return; }
      res.end(token);
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== token) { res.writeHead(401); res.end(); return; }
    const docs = {
      '/latest/dynamic/instance-identity/document': JSON.stringify(IDENTITY),
      '/latest/meta-data/iam/info': JSON.stringify(IAM_INFO),
    };
    if (docs[req.url]) { res.setHeader('content-type', 'text/plain'); res.end(docs[req.url]); return; }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const sha384 = (buf) => createHash('sha384').update(buf).digest();
const ZERO48 = Buffer.alloc(48);
// PCR extend as TPM 2.0 defines it: new = H(old || digest).
const extend = (old, digest) => sha384(Buffer.concat([old, digest]));

// Runs the CLI against the running `up` (found through --state); never throws.
function cli(args, env = {}) {
  const r = spawnSync(bin, [...args, '--state', state], {
    encoding: 'utf8',
    env: { ...process.env, ...env, MODELSEAL_TOKEN: env.MODELSEAL_TOKEN ?? '' },
    timeout: 300_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(args, env) {
  const r = cli(args, env);
  assert.equal(r.code, 0, `modelseal ${args.join(' ')} failed:\n${r.out}\n${r.err}`);
  return r;
}

async function startUp() {
  up = spawnTracked(bin, ['up', '--state', state, '--listen', '127.0.0.1:0', '--threads', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${imds.address().port}`,
      HF_ENDPOINT: `http://127.0.0.1:${imds.address().port}`,
    },
  });
  let errors = '';
  up.stderr.on('data', (d) => { errors += d; });
  base = await new Promise((resolve, reject) => {
    let out = '';
    up.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/modelseal is up: (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    up.on('exit', (code) => reject(new Error(`modelseal up exited with ${code}:\n${out}\n${errors}`)));
  });
  tokens = JSON.parse(readFileSync(path.join(state, 'tokens.local.json'), 'utf8')).tokens;
}

// A child process and a promise of its end, made at spawn: an 'exit' listener
// attached later misses an exit that already happened and waits forever.
function spawnTracked(cmd, args, opts) {
  const child = spawn(cmd, args, opts);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return child;
}

async function stopUp(signal = 'SIGTERM') {
  if (!up) return;
  if (up.exitCode === null && up.signalCode === null) up.kill(signal);
  await up.exited;
}

function tcti() {
  const conf = readFileSync(path.join(state, 'modelseal.conf'), 'utf8');
  return conf.match(/^tcti = (\S+)/m)[1];
}

// PCR `index` of the SHA-384 bank as tpm2-tools reads it.
function pcrread(index) {
  const r = spawnSync('tpm2_pcrread', ['-T', tcti(), `sha384:${index}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = r.stdout.match(new RegExp(`\\b${index}\\s*:\\s*0x([0-9A-Fa-f]{96})`));
  assert.ok(m, `no PCR ${index} in:\n${r.stdout}`);
  return m[1].toLowerCase();
}

function auditLines() {
  const text = readFileSync(path.join(state, 'kms', 'audit.log'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

// Every answer of the product API in this run, checked against docs/openapi.json
// at the end.
const answers = [];

async function api(method, route, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${route}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (route.startsWith('/ms/v1/')) answers.push({ method, route, status: res.status, json });
  return { status: res.status, json, text };
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'modelseal-product-'));
  state = path.join(dir, 'state');
  modelFile = path.join(dir, 'tiny.gguf');
  const made = spawnSync(bin, ['dev', 'make-test-model', modelFile, '--layers', '2', '--dim', '128',
    '--heads', '4', '--ctx', '2048', '--seed', '11'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  modelSha384 = sha384(readFileSync(modelFile));
  imds = await startImds();
  await startUp();
});

after(async () => {
  await stopUp();
  if (imds) imds.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the development boot measures the running binary into PCR4', () => {
  const expected = extend(ZERO48, sha384(readFileSync(bin))).toString('hex');
  assert.equal(pcrread(4), expected);
  assert.notEqual(pcrread(7), ZERO48.toString('hex'));
});

test('tokens: none, a wrong one and a role the route is not for are refused before any work', async () => {
  let r = await api('GET', '/ms/v1/models/published');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.reason, 'unauthorized');
  r = await api('GET', '/ms/v1/models/published', { token: 'ms_viewer_not-a-real-token' });
  assert.equal(r.status, 401);
  r = await api('POST', '/ms/v1/models/publish', { token: tokens.viewer, body: { name: 'x', source: { test_model: {} } } });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /owner token/);
  r = await api('PUT', '/ms/v1/keys/alias%2Fmodelseal/policy', { token: tokens.consumer, body: { policy: '{}' } });
  assert.equal(r.status, 403);
  r = await api('POST', '/ms/v1/models/load', { token: tokens.owner, body: { name: 'tiny' } });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /consumer token/);
  // Public: health, and the Ollama version probe.
  assert.equal((await api('GET', '/ms/v1/health')).status, 200);
  assert.equal((await api('GET', '/api/version')).status, 200);
  // Chat without a token: the Ollama client sees a 401.
  const anonymous = new Ollama({ host: base });
  await assert.rejects(anonymous.list(), (e) => e.status_code === 401);
  // Nothing was published by any of it.
  const list = await api('GET', '/ms/v1/models/published', { token: tokens.viewer });
  assert.deepEqual(list.json.models, []);
});

test('owner publishes a GGUF: digests equal an independent SHA-384, manifest written', () => {
  const r = ok(['publish', 'tiny', '--gguf', modelFile, '-q', '--json'],
    { MODELSEAL_TOKEN: tokens.owner });
  const published = JSON.parse(r.out);
  const model = published.model ?? published;
  assert.equal(model.sha384, modelSha384.toString('hex'));
  assert.equal(model.sha256, createHash('sha256').update(readFileSync(modelFile)).digest('hex'));
  const objects = readdirSync(path.join(state, 'store', 'models'));
  assert.ok(objects.includes('tiny.manifest.json'), objects.join(' '));
  assert.ok(objects.some((o) => o.endsWith('.msealed')), objects.join(' '));
  // The sealed object does not contain the plaintext's first bytes (GGUF magic + header).
  const sealed = objects.find((o) => o.endsWith('.msealed'));
  const head = readFileSync(modelFile).subarray(0, 64);
  assert.equal(readFileSync(path.join(state, 'store', 'models', sealed)).indexOf(head), -1);
  const ls = ok(['published', 'ls', '--json']);
  const listed = JSON.parse(ls.out).models;
  assert.deepEqual(listed.map((m) => m.name), ['tiny']);
  // The upload's own name, not the server's descriptor of it.
  assert.equal(listed[0].source, 'upload:tiny.gguf');
  assert.equal(listed[0].file_name, 'tiny.gguf');
});

test('a policy pinned to other boot PCRs: the load is refused and explained PCR by PCR', () => {
  const other = 'ab'.repeat(48);
  ok(['policy', 'allow-attested', '--pcr', `4=${other}`, '--pcr', '7'],
    { MODELSEAL_TOKEN: tokens.owner });
  const before = auditLines().length;
  const r = cli(['load', 'tiny', '-q'], { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(r.code, 0);
  const said = r.out + r.err;
  assert.match(said, /AttestedDecrypt/);
  assert.match(said, /NitroTPMPCR4/i);
  assert.ok(said.includes(other), said);
  assert.ok(said.includes(pcrread(4)), `the machine's PCR4 is not named:\n${said}`);
  // The key service denied it, and said so in its audit log.
  const denied = auditLines().slice(before).filter((l) => l.operation === 'Decrypt');
  assert.equal(denied.length, 1);
  assert.equal(denied[0].decision, 'deny');
  // Nothing was loaded, PCR15 unchanged.
  assert.equal(pcrread(15), ZERO48.toString('hex'));
  const ps = ok(['ps', '--json']);
  assert.deepEqual(JSON.parse(ps.out).models, []);
});

test('a policy for another principal: the consumer is refused, audited, nothing loaded', () => {
  const other = 'arn:aws:iam::111122223333:role/someone-else';
  ok(['policy', 'allow-attested', '--pcr', '4', '--pcr', '7', '--principal', other],
    { MODELSEAL_TOKEN: tokens.owner });
  const before = auditLines().length;
  const r = cli(['load', 'tiny', '-q'], { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(r.code, 0);
  assert.match(r.out + r.err, /key-release/);
  const decrypts = auditLines().slice(before).filter((l) => l.operation === 'Decrypt');
  assert.equal(decrypts.length, 1);
  assert.equal(decrypts[0].decision, 'deny');
  assert.match(decrypts[0].principal, /modelseal-consumer$/);
  assert.equal(pcrread(15), ZERO48.toString('hex'));
  assert.deepEqual(JSON.parse(ok(['ps', '--json']).out).models, []);
});

test('policy lint: warnings on the key\'s policy and on a draft, without changing the key', async () => {
  const key = encodeURIComponent('alias/modelseal');
  // Only PCR4 pinned: the advisory asks for PCR7 or PCR12 beside it.
  ok(['policy', 'allow-attested', '--pcr', '4'], { MODELSEAL_TOKEN: tokens.owner });
  let r = await api('GET', `/ms/v1/keys/${key}/policy`, { token: tokens.viewer });
  assert.equal(r.status, 200);
  assert.ok(r.json.warnings.some((w) => w.code === 'pcr4-without-pcr7-or-pcr12' && w.sid === 'AttestedDecrypt'),
    JSON.stringify(r.json.warnings));
  const draft = structuredClone(r.json.policy);
  draft.Statement.push({ Sid: 'Everyone', Effect: 'Allow', Principal: '*', Action: 'kms:Decrypt', Resource: '*' });
  const lint = await api('POST', '/ms/v1/policy/lint', { token: tokens.viewer, body: { policy: draft } });
  assert.equal(lint.status, 200);
  const everyone = lint.json.warnings.filter((w) => w.sid === 'Everyone').map((w) => w.code);
  assert.ok(everyone.includes('principal-star'), everyone.join(' '));
  assert.equal(lint.json.warnings.find((w) => w.sid === 'Everyone').statement, draft.Statement.length - 1);
  const bad = await api('POST', '/ms/v1/policy/lint', { token: tokens.viewer, body: { policy: '{"Statement": 3}' } });
  assert.equal(bad.status, 400);
  r = await api('GET', `/ms/v1/keys/${key}/policy`, { token: tokens.viewer });
  assert.ok(!r.json.policy.Statement.some((s) => s.Sid === 'Everyone'));
  // "Would this draft allow it?": the current policy (PCR4 pinned to this machine)
  // allows; a draft wanting another PCR4 does not, and the key keeps its policy.
  const check = (body) => api('POST', `/ms/v1/keys/${key}/policy/check`, { token: tokens.viewer, body });
  assert.equal((await check({})).json.allowed, true);
  const other = structuredClone(r.json.policy);
  const attested = other.Statement.find((s) => s.Sid === 'AttestedDecrypt');
  attested.Condition.StringEqualsIgnoreCase['kms:RecipientAttestation:NitroTPMPCR4'] = 'ab'.repeat(48);
  const denied = await check({ policy: other });
  assert.equal(denied.json.allowed, false);
  assert.ok(denied.json.lines.some((l) => l.includes('ab'.repeat(48))), denied.json.lines.join('\n'));
  assert.equal((await check({})).json.allowed, true);
});

test('--expect-sha384 that differs is refused before any key request', () => {
  ok(['policy', 'allow-attested', '--pcr', '4', '--pcr', '7'], { MODELSEAL_TOKEN: tokens.owner });
  const before = auditLines().length;
  const r = cli(['load', 'tiny', '-q', '--expect-sha384', 'cd'.repeat(48)],
    { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(r.code, 0);
  assert.match(r.out + r.err, /sha384|SHA-384/i);
  assert.deepEqual(auditLines().slice(before).filter((l) => l.operation === 'Decrypt'), []);
  assert.equal(pcrread(15), ZERO48.toString('hex'));
});

test('--key by alias is refused at the header, before any key request (an alias can be repointed)', () => {
  const before = auditLines().length;
  const r = cli(['load', 'tiny', '-q', '--key', 'alias/modelseal'],
    { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(r.code, 0);
  assert.match(r.out + r.err, /named by its key ARN or key id, not 'alias\/modelseal' \(an alias: whoever controls it can point it at another key\)/);
  assert.match(r.out + r.err, /failed at step: header/);
  assert.deepEqual(auditLines().slice(before).filter((l) => l.operation === 'Decrypt'), []);
  assert.equal(pcrread(15), ZERO48.toString('hex'));
});

test('consumer loads on this machine: PCR15 = extend(0, SHA-384 of the file), as tpm2_pcrread reads it', async () => {
  const r = ok(['load', 'tiny', '-q', '--expect-sha384', modelSha384.toString('hex')],
    { MODELSEAL_TOKEN: tokens.consumer });
  const expected = extend(ZERO48, modelSha384).toString('hex');
  assert.equal(pcrread(15), expected);
  assert.ok(r.out.includes(expected), r.out);
  const released = auditLines().filter((l) => l.operation === 'Decrypt' && l.decision === 'allow');
  assert.equal(released.length, 1);
  assert.match(released[0].statement, /AttestedDecrypt/);
  assert.equal(released[0].attestation.verified, true);
  // The default policy with PCR4 and PCR7 pinned is clean: the owner administers but
  // may not Decrypt, the consumer only with attestation.
  const policy = await api('GET', `/ms/v1/keys/${encodeURIComponent('alias/modelseal')}/policy`,
    { token: tokens.viewer });
  assert.deepEqual(policy.json.warnings, []);
  const ps = JSON.parse(ok(['ps', '--json']).out).models;
  assert.equal(ps.length, 1);
  assert.match(ps[0].source, /^sealed:file:\/\/.*\/models\/tiny\.[0-9a-f]+\.msealed$/);
  assert.equal(ps[0].measured, true);
  assert.equal(ps[0].sha384, modelSha384.toString('hex'));
  assert.equal(ps[0].pcr15_after, expected);
});

test('the PCR15 log replays to the live PCR15', async () => {
  const r = await api('GET', '/ms/v1/pcr15/log', { token: tokens.viewer });
  assert.equal(r.status, 200);
  const entries = r.json.entries;
  assert.equal(entries.length, 1);
  assert.equal(entries[0].sha384, modelSha384.toString('hex'));
  let pcr = ZERO48;
  for (const e of entries) pcr = extend(pcr, Buffer.from(e.sha384, 'hex'));
  assert.equal(pcr.toString('hex'), pcrread(15));
});

test('the attestation document verifies and carries this machine\'s PCRs', async () => {
  const nonce = 'a1'.repeat(16);
  const r = await api('POST', '/ms/v1/attestation', { token: tokens.viewer, body: { nonce } });
  assert.equal(r.status, 200);
  assert.equal(r.json.verified, true);
  assert.equal(r.json.development, true);
  assert.equal(r.json.fields.nonce, nonce);
  for (const i of [4, 7, 15]) assert.equal(r.json.fields.pcrs[String(i)], pcrread(i));
  for (const c of r.json.checks) {
    assert.ok(['passed', 'failed', 'not-run', 'not-requested'].includes(c.outcome), c.outcome);
  }
});

test('chat through the official ollama and openai clients with the consumer token', async () => {
  const ollama = new Ollama({ host: base, headers: { Authorization: `Bearer ${tokens.consumer}` } });
  const list = await ollama.list();
  assert.deepEqual(list.models.map((m) => m.name), ['tiny']);
  assert.equal(list.models[0].modelseal.measured, true);
  let text = '';
  let done = false;
  const stream = await ollama.chat({
    model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], stream: true,
    options: { num_predict: 8, temperature: 0 },
  });
  for await (const part of stream) {
    text += part.message.content;
    done = done || part.done;
  }
  assert.ok(done);
  assert.ok(text.length > 0);
  const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: tokens.consumer });
  const c = await openai.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4,
  });
  assert.equal(c.choices.length, 1);
  // The viewer may list but not chat.
  const viewer = new Ollama({ host: base, headers: { Authorization: `Bearer ${tokens.viewer}` } });
  assert.equal((await viewer.list()).models.length, 1);
  await assert.rejects(viewer.chat({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status_code === 403);
});

test('after a restart the model is loaded again with a fresh key release', async () => {
  const releasesBefore = auditLines().filter((l) => l.operation === 'Decrypt' && l.decision === 'allow').length;
  await stopUp();
  await startUp();
  // The load runs as a job after start; wait for it through the CLI (bounded).
  let models = [];
  for (let i = 0; i < 600 && models.length === 0; i++) {
    models = JSON.parse(ok(['ps', '--json']).out).models;
    if (models.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(models.length, 1, 'the model was not loaded again');
  // swtpm started a new boot: PCR15 holds this boot's one measurement.
  assert.equal(pcrread(15), extend(ZERO48, modelSha384).toString('hex'));
  const releasesAfter = auditLines().filter((l) => l.operation === 'Decrypt' && l.decision === 'allow').length;
  assert.equal(releasesAfter, releasesBefore + 1);
});

test('kill -9 during a publish leaves no half-published model and no plaintext on disk', async () => {
  // A larger model, so that the publish is still running when the server dies.
  const big = path.join(dir, 'big.gguf');
  const made = spawnSync(bin, ['dev', 'make-test-model', big, '--layers', '8', '--dim', '1024',
    '--heads', '8', '--ctx', '2048', '--seed', '3'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const publish = spawnTracked(bin, ['publish', 'big', '--gguf', big, '-q', '--state', state],
    { env: { ...process.env, MODELSEAL_TOKEN: tokens.owner }, stdio: 'ignore' });
  // Kill the server once the upload reached it and the publish job started.
  for (let i = 0; i < 600; i++) {
    const jobs = await api('GET', '/ms/v1/jobs', { token: tokens.viewer });
    if (jobs.json?.jobs?.some((j) => j.kind === 'publish' && j.state === 'running')) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await stopUp('SIGKILL');
  await publish.exited;
  await startUp();
  const objects = readdirSync(path.join(state, 'store', 'models'));
  assert.ok(!objects.includes('big.manifest.json'), objects.join(' '));
  const list = await api('GET', '/ms/v1/models/published', { token: tokens.viewer });
  assert.deepEqual(list.json.models.map((m) => m.name), ['tiny']);
  // No file under the state directory holds the model's plaintext.
  const magic = readFileSync(big).subarray(0, 4096);
  const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
  for (const f of walk(state)) {
    if (!existsSync(f)) continue;
    let data;
    try { data = readFileSync(f); } catch { continue; }
    assert.equal(data.indexOf(magic), -1, `plaintext of the model in ${f}`);
  }
  // And the next publish of the same name works.
  ok(['publish', 'big', '--gguf', big, '-q'], { MODELSEAL_TOKEN: tokens.owner });
});

test('kill -9 during a load: no plaintext on disk, nothing half-loaded, the next load works', async () => {
  const big = path.join(dir, 'big.gguf');
  const load = spawnTracked(bin, ['load', 'big', '-q', '--state', state],
    { env: { ...process.env, MODELSEAL_TOKEN: tokens.consumer }, stdio: 'ignore' });
  for (let i = 0; i < 600; i++) {
    const jobs = await api('GET', '/ms/v1/jobs', { token: tokens.viewer });
    if (jobs.json?.jobs?.some((j) => j.kind === 'load' && j.state === 'running' &&
        j.request?.published === 'big')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await stopUp('SIGKILL');
  await load.exited;
  await startUp();
  const magic = readFileSync(big).subarray(0, 4096);
  const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
  for (const root of [state, '/dev/shm']) {
    for (const f of walk(root)) {
      let data;
      try { data = readFileSync(f); } catch { continue; }
      assert.equal(data.indexOf(magic), -1, `plaintext of the model in ${f}`);
    }
  }
  // 'big' was never loaded, so the restart does not load it; the next load works.
  const models = JSON.parse(ok(['ps', '--json']).out).models.map((m) => m.name);
  assert.ok(!models.includes('big'), models.join(' '));
  ok(['load', 'big', '-q'], { MODELSEAL_TOKEN: tokens.consumer });
  const after = JSON.parse(ok(['ps', '--json']).out).models.find((m) => m.name === 'big');
  assert.equal(after.sha384, sha384(readFileSync(big)).toString('hex'));
});

test('environment views: instance metadata from IMDSv2, system, network; machine-wide details for the owner only', async () => {
  const env = await api('GET', '/ms/v1/environment', { token: tokens.viewer });
  assert.equal(env.status, 200);
  assert.equal(env.json.on_ec2, true);
  assert.deepEqual(env.json.identity_document, IDENTITY);
  assert.equal(env.json.summary.account_id, IDENTITY.accountId);
  assert.equal(env.json.summary.region, IDENTITY.region);
  assert.equal(env.json.summary.instance_type, IDENTITY.instanceType);
  assert.equal(env.json.summary.architecture, IDENTITY.architecture);
  assert.equal(env.json.iam.InstanceProfileArn, IAM_INFO.InstanceProfileArn);
  assert.equal(env.json.iam.InstanceProfileId, IAM_INFO.InstanceProfileId);
  assert.equal(env.json.iam.LastUpdated, IAM_INFO.LastUpdated);
  assert.ok(Math.abs(Date.parse(env.json.read_at) - Date.now()) < 60_000);

  // A refused request, so that the server's log has a line for it.
  assert.equal((await api('GET', '/ms/v1/system', { token: 'ms_owner_not-a-token-of-this-server' })).status, 401);
  const viewer = (await api('GET', '/ms/v1/system', { token: tokens.viewer })).json;
  const owner = (await api('GET', '/ms/v1/system', { token: tokens.owner })).json;
  for (const s of ['tpm', 'kms', 'store', 'engine', 'server']) {
    assert.equal(owner.services[s].ok, true, `${s}: ${owner.services[s].detail}`);
    assert.ok(owner.services[s].version, s);
  }
  assert.ok(viewer.memory.total > viewer.memory.available && viewer.memory.available > 0);
  assert.equal(viewer.logs, undefined);
  assert.equal(viewer.disk, undefined);
  assert.equal(viewer.state_dir, undefined);
  assert.equal(owner.state_dir, state);
  assert.ok(owner.disk.total > owner.disk.available);
  assert.ok(owner.logs.kms.some((l) => l.includes('key service listening')), JSON.stringify(owner.logs));
  // The server's own lines, each with its UTC time: the last test's load job, the
  // consumer's request that started it, the refusal just above.
  assert.ok(Array.isArray(owner.logs.tpm), Object.keys(owner.logs).join(' '));
  // Each stage of the last load says when it started and how long it took, within
  // the job's own time.
  const jobs = (await api('GET', '/ms/v1/jobs', { token: tokens.viewer })).json.jobs;
  const load = jobs.find((j) => j.kind === 'load' && j.state === 'succeeded');
  const jobSeconds = (Date.parse(load.finished) - Date.parse(load.created)) / 1000;
  const stages = Object.values(load.stages);
  assert.ok(stages.length >= 5, JSON.stringify(load.stages));
  let sum = 0;
  for (const st of stages) {
    assert.equal(st.finished, true, st.stage);
    assert.ok(st.seconds >= 0 && st.seconds <= jobSeconds + 0.01, `${st.stage}: ${st.seconds} of ${jobSeconds}`);
    assert.ok(Date.parse(st.started) >= Date.parse(load.created) - 1 &&
      Date.parse(st.started) <= Date.parse(load.finished), st.stage);
    sum += st.seconds;
  }
  assert.ok(sum <= jobSeconds + 0.05, `stages ${sum} s, job ${jobSeconds} s`);
  const server = owner.logs.server;
  for (const l of server) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z modelseal: /);
  assert.ok(server.some((l) => /job load-[0-9a-f]+ succeeded in \d+\.\d\d s$/.test(l)), server.join('\n'));
  assert.ok(server.some((l) => / POST \/ms\/v1\/models\/load by consumer: 202$/.test(l)), server.join('\n'));
  assert.ok(server.some((l) => / refused GET \/ms\/v1\/system from 127\.0\.0\.1: 401 unauthorized$/.test(l)),
    server.join('\n'));
  // Processes: modelseal's tree as ps(1) sees it (this server and its swtpm and key
  // service children), then others; for the owner only.
  assert.equal(viewer.processes, undefined);
  const ps = spawnSync('ps', ['-e', '-o', 'pid=,ppid=,rss=,comm='], { encoding: 'utf8' });
  assert.equal(ps.status, 0, ps.stderr);
  const rows = ps.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/))
    .map(([pid, ppid, rss, comm]) => ({ pid: +pid, ppid: +ppid, rss: +rss * 1024, comm }));
  const tree = new Set([up.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const r of rows) if (tree.has(r.ppid) && !tree.has(r.pid)) { tree.add(r.pid); grew = true; }
  }
  const ours = owner.processes.filter((p) => p.modelseal);
  assert.deepEqual(new Set(ours.map((p) => p.pid)), tree);
  const self = ours.find((p) => p.pid === up.pid);
  assert.equal(self.ppid, process.pid);
  assert.match(self.command, / up --state /);
  const psSelf = rows.find((r) => r.pid === up.pid);
  assert.ok(Math.abs(self.rss - psSelf.rss) < 64 << 20, `rss ${self.rss} vs ps ${psSelf.rss}`);
  assert.ok(ours.some((p) => p.name === 'swtpm'), JSON.stringify(ours));
  const others = owner.processes.filter((p) => !p.modelseal);
  assert.ok(others.length > 0 && others.length <= 30, `${others.length} other processes`);
  for (let i = 1; i < others.length; i++) assert.ok(others[i - 1].rss >= others[i].rss);
  const all = JSON.stringify(owner);
  for (const t of Object.values(tokens)) assert.ok(!all.includes(t), 'a token in the system view');

  const net = (await api('GET', '/ms/v1/network', { token: tokens.owner })).json;
  const check = (name) => net.checks.find((c) => c.name === name);
  assert.equal(check('key service').reachable, true, JSON.stringify(net.checks));
  assert.equal(typeof check('key service').milliseconds, 'number');
  assert.equal(check('object store').reachable, true);
  assert.equal(check('instance metadata (IMDS)').reachable, true);
  assert.ok(net.interfaces.some((i) => i.loopback && i.addresses.includes('127.0.0.1')));
  assert.ok(net.listening.some((l) => l.port === Number(new URL(base).port)), JSON.stringify(net.listening));
  const kmsPort = Number(readFileSync(path.join(state, 'modelseal.conf'), 'utf8')
    .match(/^endpoint = http:\/\/127\.0\.0\.1:(\d+)/m)[1]);
  assert.ok(net.listening.some((l) => l.port === kmsPort && /key service/.test(l.service)),
    JSON.stringify(net.listening));
  const netViewer = (await api('GET', '/ms/v1/network', { token: tokens.viewer })).json;
  assert.equal(netViewer.interfaces, undefined);
  assert.equal(netViewer.listening, undefined);
  assert.equal(netViewer.checks.length, net.checks.length);

  // Asynchronously: the fake IMDS answers from this process's event loop.
  const status = await new Promise((resolve) => {
    const child = spawn(bin, ['status', '--state', state], { env: { ...process.env, MODELSEAL_TOKEN: '' } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => resolve({ code, out }));
  });
  assert.equal(status.code, 0, status.out);
  assert.match(status.out, new RegExp(`instance type\\s+${IDENTITY.instanceType}`));
  assert.match(status.out, /key service\s+reachable/);
});

// The original Python sample's objects, written here the way it writes them: a data
// key from the key service (the official AWS SDK, the owner's credentials of the
// embedded stack), the model as one AES-256-GCM message (12-byte IV, ciphertext, tag)
// in NAME.gguf.enc, the CiphertextBlob in NAME.gguf.datakey.enc.
test('the original sample\'s layout: listed, loaded with attestation, measured, answering', async () => {
  const legacyFile = path.join(dir, 'legacy.gguf');
  const made = spawnSync(bin, ['dev', 'make-test-model', legacyFile, '--layers', '1', '--dim', '64',
    '--seed', '23'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const plain = readFileSync(legacyFile);
  const digest = sha384(plain);

  const conf = readFileSync(path.join(state, 'modelseal.conf'), 'utf8');
  const kmsSection = conf.slice(conf.indexOf('[kms]'));
  const endpoint = kmsSection.match(/^endpoint = (\S+)/m)[1];
  const region = kmsSection.match(/^region = (\S+)/m)[1];
  const ini = readFileSync(path.join(state, 'kms', 'clients.ini'), 'utf8');
  const owner = ini.slice(ini.indexOf('[owner]'));
  const kms = new KMSClient({
    endpoint, region,
    credentials: {
      accessKeyId: owner.match(/^aws_access_key_id = (\S+)/m)[1],
      secretAccessKey: owner.match(/^aws_secret_access_key = (\S+)/m)[1],
    },
  });
  const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/modelseal', KeySpec: 'AES_256' }));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(dk.Plaintext), iv);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  const models = path.join(state, 'store', 'models');
  writeFileSync(path.join(models, 'legacy.gguf.enc'), Buffer.concat([iv, body, cipher.getAuthTag()]));
  writeFileSync(path.join(models, 'legacy.gguf.datakey.enc'), Buffer.from(dk.CiphertextBlob));
  dk.Plaintext.fill(0);
  kms.destroy();
  const keyArn = dk.KeyId;  // the consumer pins the key by ARN, never by alias
  assert.match(keyArn, /^arn:aws:kms:[^:]+:\d{12}:key\//);

  const listed = JSON.parse(ok(['published', 'ls', '--json']).out).legacy;
  const entry = listed.find((l) => l.object.endsWith('legacy.gguf.enc'));
  assert.ok(entry, JSON.stringify(listed));
  assert.ok(entry.datakey.endsWith('legacy.gguf.datakey.enc'), JSON.stringify(entry));

  ok(['policy', 'allow-attested', '--pcr', '4', '--pcr', '7'], { MODELSEAL_TOKEN: tokens.owner });
  const pcr15Before = Buffer.from(pcrread(15), 'hex');
  const before = auditLines().length;
  // The key pinned by alias: refused at the header, before any key request.
  const aliased = cli(['load', '--legacy', entry.object, entry.datakey, '--key', 'alias/modelseal',
    '-q'], { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(aliased.code, 0);
  assert.match(aliased.out + aliased.err, /key ARN or key id, not 'alias\/modelseal' \(an alias/);
  assert.match(aliased.out + aliased.err, /failed at step: header/);
  const r = ok(['load', '--legacy', entry.object, entry.datakey, '--key', keyArn, '-q',
    '--expect-sha384', digest.toString('hex')], { MODELSEAL_TOKEN: tokens.consumer });
  const expected = extend(pcr15Before, digest).toString('hex');
  assert.equal(pcrread(15), expected);
  assert.ok(r.out.includes(expected), r.out);
  const released = auditLines().slice(before).filter((l) => l.operation === 'Decrypt');
  assert.equal(released.length, 1);
  assert.equal(released[0].decision, 'allow');
  assert.equal(released[0].attestation.verified, true);
  const ps = JSON.parse(ok(['ps', '--json']).out).models;
  const model = ps.find((m) => m.name === 'legacy');
  assert.ok(model, JSON.stringify(ps));
  assert.equal(model.sha384, digest.toString('hex'));
  assert.equal(model.measured, true);

  const ollama = new Ollama({ host: base, headers: { Authorization: `Bearer ${tokens.consumer}` } });
  const answer = await ollama.generate({ model: 'legacy', prompt: 'Hello', stream: false,
    options: { num_predict: 4, seed: 1 } });
  assert.equal(answer.done, true);
  assert.ok(answer.eval_count > 0);
  ok(['unload', 'legacy'], { MODELSEAL_TOKEN: tokens.consumer });

  // A tampered message is refused at the tag: nothing loaded, PCR15 unchanged.
  const sealedPath = path.join(models, 'legacy.gguf.enc');
  const tampered = readFileSync(sealedPath);
  tampered[tampered.length - 100] ^= 1;
  writeFileSync(sealedPath, tampered);
  const pcr15 = pcrread(15);
  const bad = cli(['load', '--legacy', entry.object, entry.datakey, '--key', keyArn, '-q'],
    { MODELSEAL_TOKEN: tokens.consumer });
  assert.notEqual(bad.code, 0);
  assert.match(bad.out + bad.err, /legacy object failed authentication/);
  assert.match(bad.out + bad.err, /failed at step: download/);
  assert.equal(pcrread(15), pcr15);
  assert.ok(!JSON.parse(ok(['ps', '--json']).out).models.some((m) => m.name === 'legacy'));
});

test('a publish after a load and unload leaves the server\'s memory level', {
  skip: process.env.MODELSEAL_SANITIZED === '1' && 'RSS is not measured under ASan',
}, () => {
  // A load leaves small blocks above the memory it freed in glibc's arenas; with its
  // dynamic thresholds, each later publish then kept about 17 MiB of freed buffers
  // resident here, which malloc_trim does not return.
  const mid = path.join(dir, 'mid.gguf');  // 174 MiB
  const made = spawnSync(bin, ['dev', 'make-test-model', mid, '--layers', '2', '--dim', '1024',
    '--heads', '8'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const owner = { MODELSEAL_TOKEN: tokens.owner };
  const consumer = { MODELSEAL_TOKEN: tokens.consumer };
  ok(['publish', 'mid0', '--gguf', mid, '-q'], owner);
  const rss = [];
  for (const name of ['mid1', 'mid2']) {
    ok(['load', 'mid0', '-q'], consumer);
    ok(['unload', 'mid0'], consumer);
    rss.push(upRssAnon(state));
    ok(['publish', name, '--gguf', mid, '-q'], owner);
    rss.push(upRssAnon(state));
  }
  for (const name of ['mid0', 'mid1', 'mid2']) ok(['published', 'rm', name], owner);
  rmSync(mid);
  const mib = rss.map((r) => (r / 2 ** 20).toFixed(1)).join(' ');
  for (let i = 0; i < rss.length; i += 2) {
    assert.ok(rss[i + 1] - rss[i] < 8 * 2 ** 20, `RssAnon after unload, after publish (MiB): ${mib}`);
  }
});

test('docs/openapi.json: served without a token, a valid OpenAPI 3.1 document, every operation routed, every answer of this run matches it', async () => {
  const served = await fetch(`${base}/ms/v1/openapi.json`);
  assert.equal(served.status, 200);
  const doc = await served.json();
  const file = JSON.parse(readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'));
  assert.deepEqual(doc, file);
  const result = await new Validator().validate(doc);
  assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
  // Every documented operation exists: without a token it is refused (401), never 404/405.
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const route = `/ms/v1${p.replace(/\{[^}]+\}/g, 'x')}`;
      const res = await fetch(`${base}${route}`, { method: method.toUpperCase() });
      await res.arrayBuffer();
      const expected = op.security && op.security.length === 0 ? 200 : 401;
      assert.equal(res.status, expected, `${method.toUpperCase()} ${route}`);
    }
  }
  // A few more reads, so that every kind of answer is checked.
  for (const r of ['/ms/v1/whoami', '/ms/v1/models/loaded', '/ms/v1/pcrs', '/ms/v1/environment',
    '/ms/v1/gpu', '/ms/v1/system', '/ms/v1/network', '/ms/v1/jobs']) {
    assert.equal((await api('GET', r, { token: tokens.viewer })).status, 200, r);
  }
  const jobs = answers.find((a) => a.route === '/ms/v1/jobs').json.jobs;
  await api('GET', `/ms/v1/jobs/${jobs[0].id}`, { token: tokens.viewer });
  await api('GET', '/ms/v1/jobs/no-such-job', { token: tokens.viewer });
  await api('POST', `/ms/v1/keys/${encodeURIComponent('alias/modelseal')}/policy/check`,
    { token: tokens.viewer, body: {} });
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'https://modelseal.invalid/openapi.json', components: doc.components });
  const templates = Object.keys(doc.paths).map((p) => ({
    p, re: new RegExp(`^/ms/v1${p.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }));
  let checked = 0;
  for (const a of answers) {
    const t = templates.find((x) => x.re.test(a.route.split('?')[0]));
    assert.ok(t, `no path in the document for ${a.route}`);
    const op = doc.paths[t.p][a.method.toLowerCase()];
    assert.ok(op, `no ${a.method} ${t.p} in the document`);
    let r = op.responses[String(a.status)];
    assert.ok(r, `${a.method} ${a.route} answered ${a.status}, which the document does not list`);
    if (r.$ref) r = doc.components.responses[r.$ref.split('/').pop()];
    const schema = r.content?.['application/json']?.schema;
    if (!schema) continue;
    const ref = schema.$ref
      ? { $ref: `https://modelseal.invalid/openapi.json${schema.$ref}` } : schema;
    const validate = ajv.compile(ref);
    assert.ok(validate(a.json), `${a.method} ${a.route} ${a.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(a.json).slice(0, 500)}`);
    checked++;
  }
  assert.ok(checked >= 20, `only ${checked} answers checked`);
});
