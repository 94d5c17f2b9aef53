// examples/node/prompt_key.mjs against the cases every implementation of the
// prompt event key must agree on (tests/events/prompt_event_key_vectors.json).
import { readFileSync } from 'node:fs';
import { promptEventKey } from '../../examples/node/prompt_key.mjs';

const url = new URL('../events/prompt_event_key_vectors.json', import.meta.url);
const { vectors } = JSON.parse(readFileSync(url, 'utf8'));
let failures = 0;
for (const v of vectors) {
  const key = promptEventKey(v.event);
  if (key !== v.key) {
    failures += 1;
    console.log(`FAIL: ${v.name}: ${key}, expected ${v.key}`);
  }
}
console.log(`node promptEventKey: ${vectors.length - failures}/${vectors.length} vectors agree`);
process.exit(failures ? 1 : 0);
