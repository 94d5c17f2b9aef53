#!/usr/bin/env node
// Ask Cascade for an answer over Kafka and print it as it streams.
//
//   node cascade_client.mjs --bootstrap 127.0.0.1:9092 --tenant acme "Why is the sky blue?"
//
// Sends one prompt event (schemas/prompt.schema.json) to the requests topic
// keyed by promptEventKey (prompt_key.mjs: the tenant and a hash of the
// request), naming this app's own reply topic, and prints the chunk
// events' text as it arrives (stdout), then the final event's model and cost
// (stderr). With --cancel-after N it sends a cancel event
// (schemas/cancel.schema.json) once N chunks have arrived.
//
// Needs kafkajs (npm install kafkajs). Exit status: 0 for an answer (or the
// cancel asked for), 1 for an error event or no terminal event in --timeout s.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { promptEventKey } from './prompt_key.mjs';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    bootstrap: { type: 'string', default: process.env.CASCADE_KAFKA_BOOTSTRAP ?? '127.0.0.1:9092' },
    tenant: { type: 'string', default: process.env.CASCADE_TENANT ?? 'example' },
    'reply-to': { type: 'string', default: process.env.CASCADE_REPLY_TO ?? 'example.replies' },
    'requests-topic': { type: 'string', default: 'cascade.requests' },
    'cancels-topic': { type: 'string', default: 'cascade.cancels' },
    model: { type: 'string', default: 'auto' },
    preference: { type: 'string', default: 'balanced' },
    'max-tokens': { type: 'string' },
    'cancel-after': { type: 'string' },
    timeout: { type: 'string', default: '60' },
  },
});
const prompt = positionals[0] ?? process.env.CASCADE_PROMPT ?? 'Why is the sky blue?';
const replyTo = args['reply-to'];
const cancelAfter = args['cancel-after'] === undefined ? undefined : Number(args['cancel-after']);

const kafka = new Kafka({ clientId: 'cascade-example', brokers: args.bootstrap.split(','), logLevel: logLevel.WARN });
const admin = kafka.admin();
// The Java client's partitioner, as Cascade's gateway uses: every client puts a
// key on the same partition, so identical requests meet.
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
// A group of its own (nothing is committed). A low maxWaitTimeInMs streams
// the answer as it comes: on a real broker any record ends the wait; Cascade's
// embedded broker answers every maxWaitTimeInMs.
const consumer = kafka.consumer({ groupId: `cascade-example-${randomUUID()}`, maxWaitTimeInMs: 10 });

// Makes sure the reply topic exists before anything is sent to it.
async function ensureTopic(topic) {
  try {
    // Asking for a topic's metadata creates it where the cluster auto-creates
    // topics (Cascade's embedded broker does; it does not answer the admin API).
    await admin.fetchTopicMetadata({ topics: [topic] });
  } catch {
    // Elsewhere, create it with the admin API.
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  }
}

async function send(topic, key, event) {
  await producer.send({ topic, messages: [{ key, value: JSON.stringify(event) }] });
}

async function main() {
  await Promise.all([admin.connect(), producer.connect(), consumer.connect()]);
  await ensureTopic(replyTo);
  // The end is read now, before the prompt is sent, so no reply can be missed.
  const ends = await admin.fetchTopicOffsets(replyTo);

  const requestId = randomUUID(); // the idempotency key: a new id asks again
  const seen = new Set(); // seq: a worker crash may deliver events again
  let streamed = false; // whether any text was printed
  let chunks = 0;
  let cancelled = false;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));

  await consumer.subscribe({ topic: replyTo });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      const event = JSON.parse(message.value.toString());
      // The reply topic may be shared: keep this request's events only.
      if (event.id !== requestId || seen.has(event.seq)) return;
      seen.add(event.seq);

      if (event.type === 'chunk') {
        if (event.model) console.error(`[${event.model} via ${event.provider ?? '?'}, cache ${event.cache}]`);
        process.stdout.write(event.delta);
        streamed ||= event.delta.length > 0;
        chunks += 1;
        if (cancelAfter !== undefined && chunks >= cancelAfter && !cancelled) {
          cancelled = true;
          await send(args['cancels-topic'], requestId, {
            v: 1, type: 'cancel', id: requestId, tenant: args.tenant, reason: 'example', ts_ms: Date.now(),
          });
          console.error(`\n[cancel sent for ${requestId}]`);
        }
      } else if (event.type === 'final') {
        // The final's content is the answer; chunks only show progress.
        process.stdout.write(streamed ? '\n' : `${event.content}\n`);
        const { route } = event;
        console.error(`[final] id=${requestId} model=${event.model} provider=${event.provider} ` +
                      `cache=${event.cache} cost_usd=${event.cost_usd.toFixed(8)} tier=${route.tier} ` +
                      `reason=${JSON.stringify(route.reason)}`);
        finish(0);
      } else if (event.type === 'error') {
        const { code, message: text } = event.error;
        console.error(`\n[error] id=${requestId} code=${code} message=${JSON.stringify(text)}`);
        finish(cancelled && code === 'cancelled' ? 0 : 1);
      }
      // Any other type is a newer kind of reply: skip it.
    },
  });
  // Start from the ends read above, whatever the group's own position.
  for (const { partition, offset } of ends) consumer.seek({ topic: replyTo, partition, offset });

  const event = {
    id: requestId,
    tenant: args.tenant,
    reply_to: replyTo,
    messages: [{ role: 'user', content: prompt }],
    model: args.model,
    preference: args.preference,
    stream: true,
  };
  if (args['max-tokens']) event.max_tokens = Number(args['max-tokens']);
  // Keyed by the request, not the tenant: a tenant's requests spread over
  // every partition (every worker), identical ones share one.
  await send(args['requests-topic'], promptEventKey(event), event);

  const timeout = setTimeout(() => {
    console.error(`\nno answer to ${requestId} within ${args.timeout} s`);
    finish(1);
  }, Number(args.timeout) * 1000);
  const status = await done;
  clearTimeout(timeout);
  return status;
}

let status = 1;
try {
  status = await main();
} finally {
  await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
}
process.exit(status);
