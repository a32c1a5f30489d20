// Black-box tests of `modelseal serve` with the official npm clients `ollama` and
// `openai`. Needs MODELSEAL_BIN (the modelseal executable); ctest sets it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const bin = process.env.MODELSEAL_BIN;
assert.ok(bin, 'MODELSEAL_BIN must name the modelseal executable');

let dir, server, base, ollama, openai;
const MODEL = 'tiny';
// A template that refuses two user turns in a row, and a model without a template.
const STRICT_TEMPLATE = "{% for m in messages %}{% if loop.index0 > 0 and m['role'] == " +
  "messages[loop.index0 - 1]['role'] %}{{ raise_exception('Conversation roles must alternate') }}" +
  "{% endif %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}" +
  "{% if add_generation_prompt %}<assistant>{% endif %}";
// A template that renders OpenAI tools, assistant tool calls and tool results.
const TOOLS_TEMPLATE = "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}" +
  "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}" +
  "{% if m['tool_calls'] %}{% for c in m['tool_calls'] %}<call>{{ c['function']['name'] }} " +
  "{{ c['function']['arguments'] | tojson }}</call>{% endfor %}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}<assistant>{% endif %}";
const QWEN2_VOCAB = path.join(process.env.MODELSEAL_LLAMA_DIR ?? '', 'vocab', 'ggml-vocab-qwen2.gguf');
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Get the current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Berlin'] } }, required: ['city'] },
  },
};

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'modelseal-chat-'));
  const model = path.join(dir, 'tiny.gguf');
  execFileSync(bin, ['dev', 'make-test-model', model, '--layers', '2', '--dim', '128',
    '--heads', '4', '--ctx', '4096', '--seed', '7']);
  const strict = path.join(dir, 'strict.gguf');
  execFileSync(bin, ['dev', 'make-test-model', strict, '--layers', '1', '--dim', '64',
    '--chat-template', STRICT_TEMPLATE]);
  const plain = path.join(dir, 'plain.gguf');
  execFileSync(bin, ['dev', 'make-test-model', plain, '--layers', '1', '--dim', '64',
    '--chat-template', 'none']);
  const tools = path.join(dir, 'tools.gguf');
  // Qwen2's byte-level BPE tokenizer: llama.cpp's tool-call grammar is fed the
  // generation prompt as tokens, which Llama 2's SentencePiece one starts with a space.
  execFileSync(bin, ['dev', 'make-test-model', tools, '--layers', '1', '--dim', '64',
    '--chat-template', TOOLS_TEMPLATE, '--vocab', QWEN2_VOCAB]);
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--model', `${MODEL}=${model}`,
    '--model', `strict=${strict}`, '--model', `plain=${plain}`, '--model', `tools=${tools}`,
    '--ctx', '4096', '--threads', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`modelseal serve exited with ${code}`)));
    // Bounded: a server that neither listens nor exits fails the suite, not CI.
    setTimeout(() => reject(new Error(`modelseal serve: no "listening" line in 120 s: ${out}`)), 120000)
      .unref();
  });
  ollama = new Ollama({ host: base });
  openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed' });
});

after(() => {
  if (server) server.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const messages = [
  { role: 'system', content: 'You are a test.' },
  { role: 'user', content: 'Say something about sealed models.' },
];

async function ps() {
  const res = await fetch(`${base}/api/ps`);
  return res.json();
}

test('ollama: version, list, ps and show report the model as unmeasured', async () => {
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  const list = await ollama.list();
  assert.equal(list.models.length, 4);
  const m = list.models.find((x) => x.name === MODEL);
  assert.equal(m.name, MODEL);
  assert.equal(m.details.family, 'llama');
  assert.equal(m.details.format, 'gguf');
  assert.match(m.digest, /^[0-9a-f]{64}$/);
  assert.equal(m.modelseal.measured, false);
  assert.match(m.modelseal.sha384, /^[0-9a-f]{96}$/);
  const running = (await ollama.ps()).models.find((x) => x.name === MODEL);
  assert.equal(running.modelseal.measured, false);
  const show = await ollama.show({ model: MODEL });
  assert.match(show.template, /\[INST\]/);
  assert.equal(show.model_info['general.architecture'], 'llama');
});

test('openai: models.list', async () => {
  const models = [];
  for await (const m of openai.models.list()) models.push(m);
  assert.deepEqual(models.map((m) => m.id).sort(), ['plain', 'strict', MODEL, 'tools']);
  const m = models.find((x) => x.id === MODEL);
  assert.equal(m.object, 'model');
  assert.equal(m.modelseal.measured, false);
});

test('ollama: chat, streaming and not, same seed gives the same text', async () => {
  const options = { seed: 42, num_predict: 24, temperature: 0.9 };
  const whole = await ollama.chat({ model: MODEL, messages, stream: false, options });
  assert.equal(whole.done, true);
  assert.equal(whole.message.role, 'assistant');
  assert.ok(whole.eval_count > 0 && whole.eval_count <= 24);
  assert.ok(whole.message.content.length > 0);

  const stream = await ollama.chat({ model: MODEL, messages, stream: true, options });
  let text = '';
  let last;
  for await (const part of stream) {
    text += part.message.content;
    last = part;
  }
  assert.equal(last.done, true);
  assert.equal(last.eval_count, whole.eval_count);
  assert.equal(text, whole.message.content);

  // The seed is used: of five seeds, not all give the same text. (Any one pair may
  // agree on a tiny random model, so no single pair is asserted to differ.)
  const texts = new Set([whole.message.content]);
  for (const seed of [43, 44, 45, 46]) {
    const other = await ollama.chat({ model: MODEL, messages, stream: false,
      options: { ...options, seed } });
    texts.add(other.message.content);
  }
  assert.ok(texts.size > 1, `five seeds, one text: ${[...texts][0]}`);
});

test('ollama: generate, streaming and not', async () => {
  const options = { seed: 5, num_predict: 16 };
  const whole = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', stream: false, options });
  assert.equal(whole.done, true);
  assert.ok(whole.response.length > 0);
  let text = '';
  for await (const part of await ollama.generate({ model: MODEL, prompt: 'Once upon a time',
    stream: true, options })) {
    text += part.response;
  }
  assert.equal(text, whole.response);
  // raw: the prompt goes to the model as it is, without the chat template's markup
  // around it, so fewer prompt tokens are evaluated; the answer is still generated.
  const raw = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', raw: true,
    stream: false, options });
  assert.equal(raw.done, true);
  assert.ok(raw.response.length > 0);
  assert.ok(raw.eval_count > 0 && raw.eval_count <= 16);
  assert.ok(raw.prompt_eval_count > 0);
  assert.ok(raw.prompt_eval_count < whole.prompt_eval_count,
    `raw ${raw.prompt_eval_count} prompt tokens, templated ${whole.prompt_eval_count}`);
});

test('openai: chat completions, streaming and not, same seed gives the same text', async () => {
  const req = { model: MODEL, messages, seed: 11, max_tokens: 20, temperature: 0.8 };
  const whole = await openai.chat.completions.create(req);
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
  assert.ok(whole.usage.completion_tokens > 0 && whole.usage.completion_tokens <= 20);
  const again = await openai.chat.completions.create(req);
  assert.equal(again.choices[0].message.content, whole.choices[0].message.content);

  const stream = await openai.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('openai: completions, streaming and not', async () => {
  const req = { model: MODEL, prompt: 'The weights are', seed: 3, max_tokens: 12 };
  const whole = await openai.completions.create(req);
  assert.equal(whole.object, 'text_completion');
  assert.ok(whole.choices[0].text.length > 0);
  let text = '';
  for await (const chunk of await openai.completions.create({ ...req, stream: true })) {
    text += chunk.choices[0]?.text ?? '';
  }
  assert.equal(text, whole.choices[0].text);
});

test('errors come in each API\'s own shape', async () => {
  await assert.rejects(ollama.chat({ model: 'nope', messages }), (e) => {
    assert.equal(e.status_code, 404);
    assert.match(e.error, /nope/);
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model: 'nope', messages }), (e) => {
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: [] }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.type, 'invalid_request_error');
    return true;
  });
});

test('NAME:latest names NAME; an over-long prompt is refused before streaming', async () => {
  const r = await ollama.chat({ model: `${MODEL}:latest`, messages, options: { num_predict: 2 } });
  assert.equal(r.done, true);
  const long = Array.from({ length: 6000 }, (_, i) => `word${i}`).join(' ');
  const tooLong = [{ role: 'user', content: long }];
  await assert.rejects(openai.chat.completions.create({ model: MODEL, stream: true, messages: tooLong }),
    (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.code, 'context_length_exceeded');
      return true;
    });
  await assert.rejects(ollama.chat({ model: MODEL, stream: true, messages: tooLong }), (e) => {
    assert.equal(e.status_code, 400);
    assert.match(e.error, /maximum context length/);
    return true;
  });
});

test('eight concurrent streams all complete', async () => {
  const one = async (i) => {
    let text = '';
    let last;
    for await (const part of await ollama.chat({ model: MODEL, stream: true,
      messages: [{ role: 'user', content: `request ${i}` }], options: { seed: i, num_predict: 32 } })) {
      text += part.message.content;
      last = part;
    }
    return { text, last };
  };
  const results = await Promise.all([...Array(8).keys()].map(one));
  for (const r of results) {
    assert.equal(r.last.done, true);
    assert.ok(r.last.eval_count > 0);
  }
});

test('a client that disconnects stops its generation', async () => {
  const before = (await ps()).modelseal;
  const controller = new AbortController();
  const res = await fetch(`${base}/api/generate`, {
    method: 'POST',
    body: JSON.stringify({ model: MODEL, prompt: 'Go on forever', raw: true,
      options: { num_predict: -1, seed: 1 } }),
    signal: controller.signal,
  });
  const reader = res.body.getReader();
  let lines = 0;
  while (lines < 3) {
    const { value } = await reader.read();
    lines += new TextDecoder().decode(value).split('\n').filter(Boolean).length;
  }
  controller.abort();
  // The server notices at its next write; wait (bounded by count) for it to stop.
  let now;
  for (let i = 0; i < 600; i++) {
    now = (await ps()).modelseal;
    if (now.active_requests === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(now.active_requests, 0);
  assert.equal(now.cancelled_requests, before.cancelled_requests + 1);
  assert.equal(now.completed_requests, before.completed_requests);
});

test('a model without a chat template is shown and chats with ChatML', async () => {
  const show = await ollama.show({ model: 'plain' });
  assert.match(show.template, /<\|im_start\|>/);
  assert.equal(show.modelseal.default_template, true);
  const r = await ollama.chat({ model: 'plain', messages, stream: false,
    options: { num_predict: 4, seed: 1 } });
  assert.equal(r.done, true);
  assert.equal(r.prompt_eval_count > 0, true);
});

test('a template that raises an exception is a 400 with its message', async () => {
  const twice = [{ role: 'user', content: 'one' }, { role: 'user', content: 'two' }];
  await assert.rejects(ollama.chat({ model: 'strict', messages: twice, stream: true }), (e) => {
    assert.equal(e.status_code, 400);
    assert.match(e.error, /Conversation roles must alternate/);
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model: 'strict', messages: twice }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.type, 'invalid_request_error');
    assert.match(e.message, /Conversation roles must alternate/);
    return true;
  });
  const ok = await ollama.chat({ model: 'strict', stream: false, options: { num_predict: 2 },
    messages: [{ role: 'user', content: 'one' }] });
  assert.equal(ok.done, true);
});

function norm(v) {
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

test('embeddings: ollama embed and openai embeddings agree, normalised, batched', async () => {
  const input = ['sealed weights', 'attested release', 'sealed weights'];
  const o = await ollama.embed({ model: MODEL, input });
  assert.equal(o.embeddings.length, 3);
  assert.equal(o.model, MODEL);
  assert.ok(o.prompt_eval_count > 0);
  const dim = o.embeddings[0].length;
  assert.equal(dim, 128);
  for (const v of o.embeddings) assert.ok(Math.abs(norm(v) - 1) < 1e-4);
  // The same text gives the same vector; different texts differ.
  for (let i = 0; i < dim; i++) assert.ok(Math.abs(o.embeddings[0][i] - o.embeddings[2][i]) < 1e-4);
  assert.ok(o.embeddings[0].some((x, i) => Math.abs(x - o.embeddings[1][i]) > 1e-3));
  const single = await ollama.embed({ model: MODEL, input: 'attested release' });
  for (let i = 0; i < dim; i++) {
    assert.ok(Math.abs(single.embeddings[0][i] - o.embeddings[1][i]) < 1e-3);
  }
  // The openai client asks for base64 unless told otherwise: both encodings.
  for (const encoding_format of [undefined, 'float']) {
    const a = await openai.embeddings.create({ model: MODEL, input, encoding_format });
    assert.equal(a.object, 'list');
    assert.equal(a.data.length, 3);
    assert.ok(a.usage.prompt_tokens > 0);
    for (const [k, d] of a.data.entries()) {
      assert.equal(d.index, k);
      assert.equal(d.embedding.length, dim);
      for (let i = 0; i < dim; i++) assert.ok(Math.abs(d.embedding[i] - o.embeddings[k][i]) < 1e-4);
    }
  }
  await assert.rejects(openai.embeddings.create({ model: 'nope', input: 'x' }), (e) => {
    assert.equal(e.status, 404);
    return true;
  });
  await assert.rejects(ollama.embed({ model: MODEL, input: [] }), (e) => {
    assert.equal(e.status_code, 400);
    return true;
  });
});

test('openai: tools, tool_choice and tool history reach the template; bad ones are 400s naming the field', async () => {
  const user = [{ role: 'user', content: 'Weather in Paris?' }];
  const ask = (extra) => openai.chat.completions.create({ model: 'tools', messages: user, max_tokens: 2, seed: 1, ...extra });
  const without = await ask({});
  const withTools = await ask({ tools: [WEATHER] });
  const chosen = await ask({ tools: [WEATHER, { ...WEATHER, function: { ...WEATHER.function, name: 'other' } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  // The template writes the tools' JSON into the prompt: more prompt tokens, and one
  // tool fewer when tool_choice names one of two.
  assert.ok(withTools.usage.prompt_tokens > without.usage.prompt_tokens + 20,
    `${withTools.usage.prompt_tokens} vs ${without.usage.prompt_tokens}`);
  assert.ok(chosen.usage.prompt_tokens >= withTools.usage.prompt_tokens);
  for (const r of [without, withTools]) {
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.equal(r.choices[0].message.tool_calls, undefined);
  }
  // A conversation with a call and its result: both rendered.
  const history = [...user,
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
      function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temperature_c":14}' }];
  const after = await openai.chat.completions.create({ model: 'tools', messages: history, tools: [WEATHER], max_tokens: 2 });
  assert.ok(after.usage.prompt_tokens > withTools.usage.prompt_tokens + 10);

  const bad = async (extra, param, message, messages = user) => {
    await assert.rejects(openai.chat.completions.create({ model: 'tools', messages, ...extra }), (e) => {
      assert.equal(e.status, 400, String(e));
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, param);
      assert.match(e.message, message);
      return true;
    });
  };
  await bad({ tools: { type: 'function' } }, 'tools', /must be an array/);
  await bad({ tools: [{ type: 'function', function: { name: 'has space' } }] }, 'tools[0]', /letters, digits/);
  await bad({ tools: [WEATHER, WEATHER] }, 'tools[1]', /two tools are named/);
  await bad({ tools: [WEATHER], tool_choice: 'always' }, 'tool_choice', /none, auto, required/);
  await bad({ tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'nope' } } },
    'tool_choice', /not in tools/);
  await bad({ tool_choice: 'required' }, 'tool_choice', /needs tools/);
  await bad({}, 'messages', /tool_call_id/, [...user, { role: 'tool', content: 'x' }]);
  await bad({}, 'messages', /not valid JSON/, [...user, { role: 'assistant', content: null,
    tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }]);
});

test('openai: logit_bias steers the answer; out-of-range ones are refused', async () => {
  // Token 278 is "▁the" in Llama 2's SentencePiece vocabulary (the test model's).
  const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 4, seed: 3,
    logit_bias: { 278: 100 } });
  assert.equal(r.choices[0].message.content.trim().replace(/\s+/g, ' '), 'the the the the');
  const c = await openai.completions.create({ model: MODEL, prompt: 'Sealed', max_tokens: 3, logit_bias: { 278: 100 } });
  assert.equal(c.choices[0].text.trim().replace(/\s+/g, ' '), 'the the the');
  for (const [bias, pattern] of [[{ 278: 101 }, /-100 to 100/], [{ x: 1 }, /not a token id/],
    [{ 99999999: 5 }, /outside the model's vocabulary/]]) {
    await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, max_tokens: 2, logit_bias: bias }),
      (e) => { assert.equal(e.status, 400, String(e)); assert.match(e.message, pattern); return true; });
  }
});

test('ollama: tools and a tool-call history reach the template; malformed ones are 400s', async () => {
  const user = [{ role: 'user', content: 'Weather in Paris?' }];
  const ask = (extra) => ollama.chat({ model: 'tools', messages: user, stream: false,
    options: { num_predict: 2, seed: 1 }, ...extra });
  const without = await ask({});
  const withTools = await ask({ tools: [WEATHER] });
  assert.ok(withTools.prompt_eval_count > without.prompt_eval_count + 20,
    `${withTools.prompt_eval_count} vs ${without.prompt_eval_count}`);
  assert.equal(withTools.message.tool_calls, undefined);
  // Ollama's history: arguments as an object, the result with tool_name.
  const history = [...user,
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
    { role: 'tool', tool_name: 'get_weather', content: '{"temperature_c":14}' }];
  const after = await ollama.chat({ model: 'tools', messages: history, tools: [WEATHER], stream: false,
    options: { num_predict: 2 } });
  assert.ok(after.prompt_eval_count > withTools.prompt_eval_count + 10);
  // Streamed the same way.
  let chunks = 0;
  for await (const part of await ollama.chat({ model: 'tools', messages: user, tools: [WEATHER], stream: true,
    options: { num_predict: 2, seed: 1 } })) {
    chunks++;
    if (part.done) assert.equal(part.prompt_eval_count, withTools.prompt_eval_count);
  }
  assert.ok(chunks >= 2);
  for (const [extra, message] of [
    [{ tools: [{ type: 'function', function: { name: 'has space' } }] }, /letters, digits/],
    [{ messages: [...user, { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: '{}' } }] }] },
      /arguments must be an object/],
  ]) {
    await assert.rejects(ask(extra), (e) => {
      assert.equal(e.status_code, 400, String(e));
      assert.match(e.error, message);
      return true;
    });
  }
});
