// The official Anthropic SDK, unchanged, pointed at `cascade gateway`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({ apiKey: process.env.CASCADE_TEST_KEY, baseURL: process.env.GATEWAY_URL, maxRetries: 0 });

test('a non-streamed message is a Messages API message', async () => {
  const message = await client.messages.create({
    model: 'auto',
    max_tokens: 200,
    system: 'Answer briefly.',
    messages: [{ role: 'user', content: 'What is the tallest mountain?' }],
  });
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.match(message.id, /^msg_gw-/);
  assert.equal(message.content[0].type, 'text');
  assert.match(message.content[0].text, /tallest mountain/);
  assert.equal(message.stop_reason, 'end_turn');
  assert.ok(message.usage.input_tokens > 0 && message.usage.output_tokens > 0);
});

test('a streamed message goes message_start ... message_stop and accumulates to the same shape', async () => {
  const stream = client.messages.stream({
    model: 'auto',
    max_tokens: 200,
    messages: [{ role: 'user', content: 'Name a famous painter.' }],
  });
  const types = [];
  let text = '';
  stream.on('streamEvent', (event) => types.push(event.type));
  stream.on('text', (delta) => (text += delta));
  const final = await stream.finalMessage();
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.ok(types.includes('content_block_delta') && types.includes('message_delta'));
  assert.equal(final.content[0].text, text);
  assert.match(text, /famous painter/);
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.output_tokens > 0);
});

test('tool use round-trips in Anthropic form', async () => {
  const tools = [
    {
      name: 'get_weather',
      description: 'The weather in a city',
      input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  ];
  const message = await client.messages.create({
    model: 'auto',
    max_tokens: 200,
    tools,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  });
  assert.equal(message.stop_reason, 'tool_use');
  const use = message.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris', unit: 'celsius' });

  const streamed = await client.messages
    .stream({ model: 'auto', max_tokens: 200, tools, messages: [{ role: 'user', content: 'What is the weather in Paris today?' }] })
    .finalMessage();
  const streamedUse = streamed.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(streamedUse.input, { city: 'Paris', unit: 'celsius' });

  // The tool's result goes back as a tool_result block.
  const answer = await client.messages.create({
    model: 'auto',
    max_tokens: 200,
    tools,
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: [use] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 degrees and sunny' }, { type: 'text', text: 'Summarize it.' }] },
    ],
  });
  assert.equal(answer.content[0].type, 'text');
  assert.equal(answer.stop_reason, 'end_turn');
});

test('errors come in Anthropic shape and status', async () => {
  await assert.rejects(
    client.messages.create({ model: 'auto', max_tokens: 10, top_k: 5, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error?.error?.type === 'invalid_request_error' && /top_k/.test(e.message),
  );
  await assert.rejects(
    client.messages.create({ model: 'claude-9', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.NotFoundError && e.error?.error?.type === 'not_found_error',
  );
  const stranger = new Anthropic({ apiKey: 'not-a-key', baseURL: process.env.GATEWAY_URL, maxRetries: 0 });
  await assert.rejects(
    stranger.messages.create({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error?.error?.type === 'authentication_error',
  );
});
