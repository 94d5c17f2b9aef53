// `cascade mcp` driven by the official MCP TypeScript SDK's client over
// stdio, against a whole local Cascade (tests/mcp/mcp_sdk_test.sh starts it
// with tests/support/stack.sh and sets CASCADE, STACK_DIR and the CASCADE_*
// environment): the handshake, the tool list, and each of the five tools,
// checked against what Cascade itself says. The SDK also checks every
// structured result against the tool's outputSchema.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import process from 'node:process';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const tenant = `mcp-e2e-${process.pid}`;
const run = Date.now().toString(36);
const prompt = `Why is the sky blue? (run ${run})`;
const stderrLines = [];
const protocolErrors = [];
let client;
let transport;

// Waits until check() returns a truthy value.
async function waitFor(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function structured(result, tool) {
  assert.ok(!result.isError, `${tool} failed: ${JSON.stringify(result.content)}`);
  assert.ok(result.structuredContent, `${tool} returned no structuredContent`);
  return result.structuredContent;
}

function errorText(result, tool) {
  assert.equal(result.isError, true, `${tool} should have failed: ${JSON.stringify(result)}`);
  return result.content.map((c) => c.text).join('\n');
}

const call = (name, args = {}) => client.callTool({ name, arguments: args });

before(async () => {
  transport = new StdioClientTransport({
    command: process.env.CASCADE,
    args: ['--bootstrap-file', `${process.env.STACK_DIR}/bootstrap`, 'mcp', '--tenant', tenant],
    env: { ...process.env },  // the stack's CASCADE_* settings: providers, the ledger's address
    stderr: 'pipe',
  });
  // Its log, for mcp_sdk_test.sh to show when a test fails.
  const log = fs.createWriteStream(`${process.env.STACK_DIR}/mcp.log`);
  transport.stderr.on('data', (chunk) => {
    log.write(chunk);
    stderrLines.push(...chunk.toString().split('\n').filter(Boolean));
  });
  client = new Client({ name: 'cascade-e2e', version: '1.0.0' });
  // A line on stdout that is not an MCP message surfaces here.
  client.onerror = (error) => protocolErrors.push(String(error));
  await client.connect(transport);
});

after(async () => {
  if (client) await client.close();
});

test('initialize: the server names itself, offers tools and answers pings', async () => {
  assert.equal(client.getServerVersion().name, 'cascade');
  assert.deepEqual(client.getServerCapabilities(), { tools: { listChanged: false } });
  assert.match(client.getInstructions(), new RegExp(tenant));
  await client.ping();
});

test('tools/list: the five tools with their schemas, none taking a tenant', async () => {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name),
    ['complete_prompt', 'check_model_costs', 'get_recommendation', 'query_usage', 'set_budget']);
  for (const tool of tools) {
    assert.equal(tool.inputSchema.type, 'object', tool.name);
    assert.equal(tool.inputSchema.additionalProperties, false, tool.name);
    assert.ok(!('tenant' in tool.inputSchema.properties), `${tool.name} must not take a tenant`);
    assert.equal(tool.outputSchema.type, 'object', tool.name);
    assert.ok(tool.title && tool.description, tool.name);
  }
});

let catalog;
test('check_model_costs: prices per model, and a prompt priced cheapest first', async () => {
  catalog = structured(await call('check_model_costs'), 'check_model_costs');
  assert.equal(catalog.has_prompt, false);
  assert.ok(catalog.models.length >= 10, `only ${catalog.models.length} models`);
  const priced = structured(await call('check_model_costs', { prompt, tier: 'small', expected_output_tokens: 200 }),
    'check_model_costs');
  assert.equal(priced.has_prompt, true);
  assert.equal(priced.expected_output_tokens, 200);
  assert.ok(priced.models.length > 0);
  for (const m of priced.models) {
    assert.equal(m.tier, 'small');
    assert.ok(m.input_tokens > 0);
    const expected = (m.input_tokens * m.input_per_mtok + 200 * m.output_per_mtok) / 1e6;
    assert.ok(Math.abs(m.estimated_cost_usd - expected) < 1e-12, `${m.model}: ${m.estimated_cost_usd} != ${expected}`);
  }
  for (let i = 1; i < priced.models.length; i++)
    assert.ok(priced.models[i - 1].estimated_cost_usd <= priced.models[i].estimated_cost_usd, 'cheapest first');
  assert.ok(priced.baseline_cost_usd > priced.models[0].estimated_cost_usd);
});

let recommendation;
test('get_recommendation: the router\'s choice and why, no model called', async () => {
  recommendation = structured(await call('get_recommendation', { prompt }), 'get_recommendation');
  assert.equal(recommendation.tier, 'small');
  assert.ok(catalog.models.some((m) => m.model === recommendation.model), recommendation.model);
  assert.match(recommendation.reason, /^heuristic score=\S+ pref=balanced tier=small/);
  assert.equal(recommendation.thresholds.kind, 'complexity');
  assert.match(recommendation.explanation, new RegExp(recommendation.model));
  assert.ok(recommendation.max_cost_usd > 0);
});

let first;
test('complete_prompt: answered through Kafka by the model get_recommendation named, then from the cache', async () => {
  const result = await call('complete_prompt', { prompt });
  first = structured(result, 'complete_prompt');
  assert.equal(result.content[0].type, 'text');
  assert.match(result.content[0].text, /simulated /);
  assert.equal(first.answer, result.content[0].text);
  assert.equal(first.model, recommendation.model, 'the worker routes as get_recommendation said');
  assert.ok(first.route_reason.startsWith(recommendation.reason), first.route_reason);
  assert.equal(first.cache, 'miss');
  assert.ok(first.cost_usd > 0);
  assert.equal(first.baseline_model, 'gpt-4o');
  assert.ok(first.savings_usd > 0, 'a small model saves against gpt-4o');
  assert.ok(first.output_tokens > 0);

  const again = structured(await call('complete_prompt', { prompt }), 'complete_prompt');
  assert.equal(again.cache, 'exact');
  assert.equal(again.cost_usd, 0);
  assert.equal(again.answer, first.answer);
  assert.ok(again.savings_usd > 0);
});

test('query_usage: the tenant\'s two requests, as the ledger counted them, per model', async () => {
  const usage = await waitFor('the ledger to count both requests', async () => {
    const u = structured(await call('query_usage', { days: 1 }), 'query_usage');
    return u.requests >= 2 ? u : null;
  });
  assert.equal(usage.tenant, tenant);
  assert.equal(usage.requests, 2);
  assert.equal(usage.cache_hits, 1);
  assert.equal(usage.cache_hit_rate, 0.5);
  assert.ok(Math.abs(usage.cost_usd - first.cost_usd) < 1e-12, `${usage.cost_usd} != ${first.cost_usd}`);
  assert.ok(usage.savings_usd > 0);
  assert.equal(usage.from, usage.to, 'one day');
  assert.deepEqual(usage.models.map((m) => m.model), [first.model]);
  assert.equal(usage.models[0].requests, 2);
});

test('arguments: schema violations are tool errors naming the argument; an unknown tool is -32602', async () => {
  assert.match(errorText(await call('complete_prompt', { prompt: 'hi', tenant: 'someone-else' }), 'complete_prompt'),
    /unknown argument 'tenant'/);
  assert.match(errorText(await call('query_usage', { days: 0 }), 'query_usage'), /'days' must be at least 1/);
  assert.match(errorText(await call('set_budget', { soft_percent: 120 }), 'set_budget'),
    /'soft_percent' must be at most 100/);
  await assert.rejects(call('drop_tables'), (error) => error instanceof McpError && error.code === -32602);
});

test('set_budget: a tiny daily budget stops the tenant\'s next request; clearing it lets them through', async () => {
  const set = structured(await call('set_budget', { daily_usd: 0.000001 }), 'set_budget');
  assert.equal(set.tenant, tenant);
  assert.equal(set.scope, '');
  assert.equal(set.cleared, false);
  assert.equal(set.daily_usd, 0.000001);
  assert.equal(set.monthly_usd, 0);
  // The workers follow the budgets topic: within moments a new (uncached)
  // request is refused before any provider is called.
  let n = 0;
  const refused = await waitFor('the budget to reach the worker', async () => {
    const r = await call('complete_prompt', { prompt: `Budgeted question ${run} #${n++}` });
    return r.isError ? r : null;
  });
  assert.match(errorText(refused, 'complete_prompt'), /^budget_exceeded: /);
  const cleared = structured(await call('set_budget', { clear: true }), 'set_budget');
  assert.equal(cleared.cleared, true);
  await waitFor('the cleared budget to reach the worker', async () => {
    const r = await call('complete_prompt', { prompt: `After the budget ${run} #${n++}` });
    return !r.isError;
  });
});

test('shutdown: closing stdin ends the server; stdout carried only MCP messages, logs went to stderr', async () => {
  const pid = transport.pid;
  const started = Date.now();
  await client.close();
  client = null;
  // The SDK waits 2 s before it sends SIGTERM: the server left on its own.
  assert.ok(Date.now() - started < 2000, `the server took ${Date.now() - started} ms to exit`);
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
  assert.deepEqual(protocolErrors, []);
  assert.ok(stderrLines.some((l) => /mcp: serving tenant/.test(l)), 'logs go to stderr');
});
