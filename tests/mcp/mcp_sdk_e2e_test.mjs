// `cascade mcp` driven by the official MCP TypeScript SDK's client over
// stdio, against a real local Cascade (embedded broker, worker, ledger,
// simulated upstream; tests/support/cascade_stack.mjs): the handshake, the
// tool list, and each of the five tools with results checked against what
// Cascade itself says (the SDK also checks every structured result against
// the tool's outputSchema).
//
//   node tests/mcp/mcp_sdk_e2e_test.mjs build/apps/cascade/cascade
//
// Exits 77 (ctest's SKIP_RETURN_CODE) when node_modules has no MCP SDK (`npm
// ci` installs it), 1 on any wrong answer.
import assert from 'node:assert/strict';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

import { startCascadeStack, waitFor } from '../support/cascade_stack.mjs';

const SKIP = 77;
const cascade = process.argv[2];
if (!cascade) {
  console.error('usage: node mcp_sdk_e2e_test.mjs <path to the cascade binary>');
  process.exit(2);
}

let Client, StdioClientTransport, McpError;
try {
  ({ Client } = await import('@modelcontextprotocol/sdk/client/index.js'));
  ({ StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js'));
  ({ McpError } = await import('@modelcontextprotocol/sdk/types.js'));
} catch (error) {
  console.log(`SKIP: the MCP TypeScript SDK is not installed (run npm ci at the repository's root): ${error.message}`);
  process.exit(SKIP);
}

const tenant = `mcp-e2e-${process.pid}`;
const run = Date.now().toString(36);
let stack;
let client;
let transport;
const stderrLines = [];
const protocolErrors = [];

function structured(result, tool) {
  assert.ok(!result.isError, `${tool} failed: ${JSON.stringify(result.content)}`);
  assert.ok(result.structuredContent, `${tool} returned no structuredContent`);
  return result.structuredContent;
}

function errorText(result, tool) {
  assert.equal(result.isError, true, `${tool} should have failed: ${JSON.stringify(result)}`);
  return result.content.map((c) => c.text).join('\n');
}

async function step(name, body) {
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

try {
  stack = await startCascadeStack({ cascade });
  transport = new StdioClientTransport({
    command: cascade,
    args: ['--bootstrap-file', stack.bootstrapFile, 'mcp', '--tenant', tenant],
    env: stack.env,
    stderr: 'pipe',
  });
  transport.stderr.on('data', (chunk) => stderrLines.push(...chunk.toString().split('\n').filter(Boolean)));
  client = new Client({ name: 'cascade-e2e', version: '1.0.0' });
  // A line on stdout that is not an MCP message surfaces here.
  client.onerror = (error) => protocolErrors.push(String(error));

  await step('initialize: the server names itself, offers tools, agrees a version the SDK speaks', async () => {
    await client.connect(transport);
    assert.equal(client.getServerVersion().name, 'cascade');
    assert.deepEqual(client.getServerCapabilities(), { tools: { listChanged: false } });
    assert.match(client.getInstructions(), new RegExp(tenant));
    await client.ping();
  });

  let tools;
  await step('tools/list: the five tools with their schemas', async () => {
    ({ tools } = await client.listTools());
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

  const prompt = `Why is the sky blue? (run ${run})`;
  let catalog;
  await step('check_model_costs: prices per model, the prompt cheapest first', async () => {
    catalog = structured(await client.callTool({ name: 'check_model_costs', arguments: {} }), 'check_model_costs');
    assert.equal(catalog.has_prompt, false);
    assert.ok(catalog.models.length >= 10, `only ${catalog.models.length} models`);
    const priced = structured(await client.callTool({
      name: 'check_model_costs', arguments: { prompt, tier: 'small', expected_output_tokens: 200 },
    }), 'check_model_costs');
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
  await step('get_recommendation: the router\'s choice and why, no model called', async () => {
    recommendation = structured(await client.callTool({ name: 'get_recommendation', arguments: { prompt } }),
      'get_recommendation');
    assert.equal(recommendation.tier, 'small');
    assert.ok(catalog.models.some((m) => m.model === recommendation.model), recommendation.model);
    assert.match(recommendation.reason, /^heuristic score=\S+ pref=balanced tier=small/);
    assert.equal(recommendation.thresholds.kind, 'complexity');
    assert.match(recommendation.explanation, new RegExp(recommendation.model));
    assert.ok(recommendation.max_cost_usd > 0);
  });

  let first;
  await step('complete_prompt: answered through Kafka by the routed model, then from the cache', async () => {
    const result = await client.callTool({ name: 'complete_prompt', arguments: { prompt } });
    first = structured(result, 'complete_prompt');
    assert.equal(result.content[0].type, 'text');
    assert.match(result.content[0].text, /\[simulated /);
    assert.equal(first.answer, result.content[0].text);
    assert.equal(first.model, recommendation.model, 'the worker routes as get_recommendation said');
    assert.ok(first.route_reason.startsWith(recommendation.reason), first.route_reason);
    assert.equal(first.cache, 'miss');
    assert.ok(first.cost_usd > 0);
    assert.equal(first.baseline_model, 'gpt-4o');
    assert.ok(first.savings_usd > 0, 'a small model saves against gpt-4o');
    assert.ok(first.output_tokens > 0);

    const again = structured(await client.callTool({ name: 'complete_prompt', arguments: { prompt } }), 'complete_prompt');
    assert.equal(again.cache, 'exact');
    assert.equal(again.cost_usd, 0);
    assert.equal(again.answer, first.answer);
    assert.ok(again.savings_usd > 0);
  });

  await step('query_usage: the tenant\'s two requests in the ledger, per model', async () => {
    const usage = await waitFor('the ledger to count both requests', async () => {
      const u = structured(await client.callTool({ name: 'query_usage', arguments: { days: 1 } }), 'query_usage');
      return u.requests >= 2 ? u : null;
    }, 15000);
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

  await step('arguments: schema violations are tool errors naming the argument; an unknown tool is -32602', async () => {
    const tenantArg = errorText(await client.callTool({
      name: 'complete_prompt', arguments: { prompt: 'hi', tenant: 'someone-else' },
    }), 'complete_prompt');
    assert.match(tenantArg, /unknown argument 'tenant'/);
    assert.match(errorText(await client.callTool({ name: 'query_usage', arguments: { days: 0 } }), 'query_usage'),
      /'days' must be at least 1/);
    assert.match(errorText(await client.callTool({ name: 'set_budget', arguments: { soft_percent: 120 } }), 'set_budget'),
      /'soft_percent' must be at most 100/);
    await assert.rejects(client.callTool({ name: 'drop_tables', arguments: {} }),
      (error) => error instanceof McpError && error.code === -32602);
  });

  await step('set_budget: a tiny daily budget stops the tenant\'s next request; clearing it lets them through', async () => {
    const set = structured(await client.callTool({ name: 'set_budget', arguments: { daily_usd: 0.000001 } }), 'set_budget');
    assert.equal(set.tenant, tenant);
    assert.equal(set.scope, '');
    assert.equal(set.cleared, false);
    assert.equal(set.daily_usd, 0.000001);
    assert.equal(set.monthly_usd, 0);
    // The workers follow the budgets topic: within moments a new (uncached)
    // request is refused before any provider is called.
    let n = 0;
    const refused = await waitFor('the budget to reach the worker', async () => {
      const r = await client.callTool({ name: 'complete_prompt', arguments: { prompt: `Budgeted question ${run} #${n++}` } });
      return r.isError ? r : null;
    }, 15000);
    assert.match(errorText(refused, 'complete_prompt'), /^budget_exceeded: /);
    const cleared = structured(await client.callTool({ name: 'set_budget', arguments: { clear: true } }), 'set_budget');
    assert.equal(cleared.cleared, true);
    await waitFor('the cleared budget to reach the worker', async () => {
      const r = await client.callTool({ name: 'complete_prompt', arguments: { prompt: `After the budget ${run} #${n++}` } });
      return !r.isError;
    }, 15000);
  });

  await step('shutdown: closing stdin ends the server; stdout carried only MCP messages', async () => {
    const pid = transport.pid;
    const started = Date.now();
    await client.close();
    // The SDK waits 2 s before it sends SIGTERM: the server left on its own.
    assert.ok(Date.now() - started < 2000, `the server took ${Date.now() - started} ms to exit`);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    client = null;
    assert.deepEqual(protocolErrors, []);
    assert.ok(stderrLines.some((l) => /mcp: serving tenant/.test(l)), 'logs go to stderr');
  });
  console.log('PASS');
} catch (error) {
  console.error(`FAIL: ${error.stack ?? error}`);
  if (stderrLines.length) console.error(`---- cascade mcp (stderr)\n${stderrLines.slice(-40).join('\n')}`);
  if (stack) console.error(stack.logs());
  process.exitCode = 1;
} finally {
  if (client) await client.close().catch(() => {});
  if (stack) await stack.stop();
}
await sleep(0);
