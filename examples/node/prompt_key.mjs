// The Kafka key of a Cascade prompt event (docs/events.md, "Prompt event key").
//
//   import { promptEventKey } from './prompt_key.mjs';
//   await producer.send({ topic: 'cascade.requests', messages: [{ key: promptEventKey(event), value: JSON.stringify(event) }] });
//
// The key is "<tenant>/<32 hex digits>": the tenant, then the start of a
// SHA-256 of what makes two requests identical (everything Cascade's request
// fingerprint covers except max_tokens, whose default only the workers know).
// A tenant's distinct requests spread over every partition, hence every
// worker; identical ones share a partition, where the worker answers them with
// one model call.
//
// The same function as Cascade's prompt_event_key (events/request_fingerprint.h),
// checked against tests/events/prompt_event_key_vectors.json. One difference
// JavaScript cannot avoid: a number written with a fraction or an exponent
// but whole (1.0, 1e3) inside messages or tools is a float to Cascade and an
// integer here, so such a request may get another key than the same request
// sent by a C++ or Python producer (it may then miss sharing a model call
// with it; nothing else changes). Node's standard library only.
import { createHash } from 'node:crypto';

export const VERSION = 'cascade.prompt-key.v1';
export const HEX_DIGITS = 32;

const utf8 = (text) => Buffer.from(text, 'utf8');
const counted = (bytes) => Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);

// C's %.17g, which reads back as the same double: distinct values stay distinct.
function g17(x) {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa, e] = x.toExponential(16).split('e');
  const exponent = Number(e);
  const trim = (s) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exponent < -4 || exponent >= 17) {
    return `${trim(mantissa)}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return trim(x.toFixed(16 - exponent));
}

// The type-tagged form of a JSON value (the C++ CanonicalWriter's).
function value(v, out) {
  if (v === null || v === undefined) {
    out.push(Buffer.from('n'));
  } else if (v === true || v === false) {
    out.push(Buffer.from(v ? 't' : 'f'));
  } else if (typeof v === 'number') {
    out.push(Buffer.from(Number.isInteger(v) ? `i${v};` : `d${g17(v)};`));
  } else if (typeof v === 'bigint') {
    out.push(Buffer.from(`i${v};`));
  } else if (typeof v === 'string') {
    out.push(Buffer.from('s'), counted(utf8(v)));
  } else if (Array.isArray(v)) {
    out.push(Buffer.from(`a${v.length}[`));
    for (const item of v) value(item, out);
    out.push(Buffer.from(']'));
  } else if (typeof v === 'object') {
    // Keys in UTF-8 byte order, as Cascade's JSON objects keep them (not
    // JavaScript's UTF-16 order).
    const entries = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .map((k) => [utf8(k), v[k]])
      .sort((a, b) => Buffer.compare(a[0], b[0]));
    out.push(Buffer.from(`o${entries.length}{`));
    for (const [key, item] of entries) {
      out.push(Buffer.from('s'), counted(key));
      value(item, out);
    }
    out.push(Buffer.from('}'));
  } else {
    throw new TypeError(`not a JSON value: ${v}`);
  }
}

const absent = (v) => v === null || v === undefined;

// The bytes promptEventKey hashes. An optional field that is absent or null
// counts as absent, as Cascade reads it; `tools` counts only as a non-empty array.
export function canonicalPromptKey(event) {
  const out = [Buffer.from(`${VERSION}\n`)];
  const field = (name, text) => out.push(Buffer.from(`${name} `), counted(utf8(text)), Buffer.from('\n'));
  field('tenant', event.tenant);
  field('model', absent(event.model) ? 'auto' : event.model);
  field('preference', absent(event.preference) ? 'balanced' : event.preference);
  out.push(Buffer.from(`temperature ${absent(event.temperature) ? '-' : g17(Number(event.temperature))}\n`));
  out.push(Buffer.from('messages '));
  value(event.messages, out);
  out.push(Buffer.from('\n'));
  if (!absent(event.response_format)) {
    out.push(Buffer.from('response_format '));
    value(event.response_format, out);
    out.push(Buffer.from('\n'));
  }
  if (!absent(event.cascade)) out.push(Buffer.from(event.cascade ? 'cascade t\n' : 'cascade f\n'));
  if (Array.isArray(event.tools) && event.tools.length > 0) {
    out.push(Buffer.from('tools '));
    value(event.tools, out);
    out.push(Buffer.from('\n'));
  }
  if (!absent(event.tool_choice)) {
    out.push(Buffer.from('tool_choice '));
    value(event.tool_choice, out);
    out.push(Buffer.from('\n'));
  }
  return Buffer.concat(out);
}

// The record key for a prompt event (an object as it will be sent).
export function promptEventKey(event) {
  const digest = createHash('sha256').update(canonicalPromptKey(event)).digest('hex');
  return `${event.tenant}/${digest.slice(0, HEX_DIGITS)}`;
}
