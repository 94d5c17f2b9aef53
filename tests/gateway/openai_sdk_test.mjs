// The official OpenAI SDK, unchanged, pointed at `cascade gateway`
// (tests/gateway/sdk_test.sh starts the stack and sets the environment).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

const baseURL = `${process.env.GATEWAY_URL}/v1`;
const client = new OpenAI({ apiKey: process.env.CASCADE_TEST_KEY, baseURL, maxRetries: 0 });

test('a non-streamed completion names the model that answered, its cost and route', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: 'What is the capital of France?' }] })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.match(data.id, /^chatcmpl-gw-/);
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.match(data.choices[0].message.content, /simulated .*capital of France/);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  assert.equal(response.headers.get('x-cascade-model'), data.model);
  assert.ok(Number(response.headers.get('x-cascade-cost-usd')) > 0);
  assert.match(response.headers.get('x-cascade-route-reason'), /tier=/);
  assert.equal(response.headers.get('x-cascade-cache'), 'miss');
  assert.equal(data._request_id, response.headers.get('x-cascade-request-id'));
});

test('a streamed completion arrives as chat.completion.chunk objects, then usage, then [DONE]', async () => {
  const stream = await client.chat.completions.create({
    model: 'auto',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Name three rivers in Europe.' }],
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.match(text, /Name three rivers in Europe/);
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.completion_tokens > 0);
  assert.ok(chunks.every((c) => c.model === last.model && c.model !== 'auto'));
});

test('the same request twice is answered from the cache the second time', async () => {
  const ask = () =>
    client.chat.completions
      .create({ model: 'auto', messages: [{ role: 'user', content: 'Spell the word cache backwards.' }] })
      .withResponse();
  const first = await ask();
  const second = await ask();
  assert.equal(first.response.headers.get('x-cascade-cache'), 'miss');
  assert.equal(second.response.headers.get('x-cascade-cache'), 'exact');
  assert.equal(second.data.choices[0].message.content, first.data.choices[0].message.content);
  assert.equal(Number(second.response.headers.get('x-cascade-cost-usd')), 0);
});

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];

test('tool calls come back as OpenAI sends them, streamed and not', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const whole = await client.chat.completions.create({ model: 'auto', messages, tools, tool_choice: 'auto' });
  const call = whole.choices[0].message.tool_calls[0];
  assert.equal(whole.choices[0].finish_reason, 'tool_calls');
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', unit: 'celsius' });

  const stream = client.chat.completions.stream({ model: 'auto', messages, tools, cache: 'off' });
  const final = await stream.finalChatCompletion();
  const streamed = final.choices[0].message.tool_calls[0];
  assert.equal(streamed.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(streamed.function.arguments), { city: 'Paris', unit: 'celsius' });
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
});

test("Cascade's options ride along as body fields and x-cascade-* headers", async () => {
  const { response } = await client.chat.completions
    .create(
      { model: 'auto', preference: 'quality', cache: 'off', messages: [{ role: 'user', content: 'Hi there' }] },
      { headers: { 'x-cascade-tags': 'sdk-test, openai' } },
    )
    .withResponse();
  assert.match(response.headers.get('x-cascade-route-reason'), /pref=quality/);
});

test('errors come in OpenAI shape and status, naming the parameter', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'auto', n: 2, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n' && /'n'/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-9-ultra', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'auto', messages: [{ role: 'robot', content: 'x' }] }),
    (e) => e instanceof OpenAI.BadRequestError && /messages\[0\]\.role/.test(e.message),
  );
  const stranger = new OpenAI({ apiKey: 'csk-0123456789abcdef.' + '0'.repeat(48), baseURL, maxRetries: 0 });
  await assert.rejects(
    stranger.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
});

test('the model list is the catalog, in OpenAI list shape', async () => {
  const models = [];
  for await (const model of client.models.list()) models.push(model);
  assert.equal(models[0].id, 'auto');
  assert.ok(models.length > 5);
  assert.ok(models.every((m) => m.object === 'model'));
  const one = await client.models.retrieve(models[1].id);
  assert.equal(one.id, models[1].id);
});

test('embeddings come from the configured embedder', async () => {
  const result = await client.embeddings.create({ model: 'builtin', input: ['a cat sat', 'a dog ran'] });
  assert.equal(result.data.length, 2);
  assert.equal(result.data[0].embedding.length, 256);
  const norm = Math.hypot(...result.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-3, `unit length, got ${norm}`);
});

test('aborting a stream cancels the request: the gateway publishes a cancel', async () => {
  const metrics = async () => (await fetch(`${process.env.GATEWAY_URL}/metrics`)).text();
  const cancels = (text) =>
    Number(/cascade_gateway_cancels_total\{reason="client_closed"\} (\d+)/.exec(text)?.[1] ?? 0);
  const before = cancels(await metrics());
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: 'auto', stream: true, cache: 'off', messages: [{ role: 'user', content: 'Write a long story about a slow river.' }] },
    { signal: controller.signal },
  );
  // Leaving the loop early aborts the SDK's request: the connection closes.
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) {
        controller.abort();
        break;
      }
    }
  } catch (e) {
    assert.ok(e.name === 'APIUserAbortError' || e.name === 'AbortError', String(e));
  }
  for (let i = 0; i < 100 && cancels(await metrics()) === before; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(cancels(await metrics()), before + 1);
});
