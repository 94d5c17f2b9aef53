#!/usr/bin/python3
"""Checks what an example client (examples/) printed against what the topics
got, after tests/examples/examples_test.sh ran it three times against a stack:

answer run: exit 0; the prompt's record on the requests topic is keyed by its
  prompt event key (examples/python/prompt_key.py); the request's reply events
  are chunks then one final (seq 0, 1, 2, ...), the chunks' text is the
  final's content and is what the client printed, the model is a catalog id
  named by the first chunk too, and a cost event for the request reached the
  ledger topic;
cancel run: exit 0; a cancel event naming the request and tenant reached the
  cancels topic, and the request ended with one error `cancelled` after the
  chunks already sent;
refused run (a model the catalog does not have): exit 1; the request's only
  reply is an error `invalid_request`, and its dead letter is on the
  dead-letter topic.

Every event read is validated against its schema in schemas/.
"""
import argparse
import json
import pathlib
import re
import sys
import time

import jsonschema
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"))
from prompt_key import prompt_event_key  # noqa: E402

problems = []


def check(condition, text):
    if not condition:
        problems.append(text)
    return condition


def read_topic(bootstrap, topic):
    """Every record of every partition of the topic, from the beginning."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cascade-example-check",
                         "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records, open_partitions = [], set(partitions)
    deadline = time.monotonic() + 20
    while open_partitions and time.monotonic() < deadline:
        record = consumer.poll(0.5)
        if record is None:
            continue
        if record.error():
            if record.error().code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(record.partition())
            continue
        records.append(record)
    consumer.close()
    return records


def events_of(records, key, **fields):
    """The records' JSON values with the given key and fields."""
    out = []
    for record in records:
        if record.key() != key.encode():
            continue
        event = json.loads(record.value())
        if all(event.get(name) == value for name, value in fields.items()):
            out.append(event)
    return out


def wait_for_events(bootstrap, topic, key, request_id):
    """The request's events on a topic the worker writes apart from the reply."""
    deadline = time.monotonic() + 15
    while True:
        events = events_of(read_topic(bootstrap, topic), key, id=request_id)
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


class Schemas:
    def __init__(self, directory):
        self.validators = {}
        for path in directory.glob("*.schema.json"):
            schema = json.loads(path.read_text())
            self.validators[path.name[: -len(".schema.json")]] = jsonschema.Draft202012Validator(schema)

    def validate(self, name, event, where):
        errors = list(self.validators[name].iter_errors(event))
        check(not errors, f"{where} is not a valid {name} event: {errors[0].message if errors else ''}")


def catalog_ids(models_yaml):
    return set(re.findall(r"^\s*- id: *([^\s#]+)", models_yaml.read_text(), re.MULTILINE))


def run_output(directory):
    directory = pathlib.Path(directory)
    return (int((directory / "status").read_text()), (directory / "stdout").read_text(),
            (directory / "stderr").read_text())


def check_replies(replies, schemas, request_id, label):
    """The request's reply events in seq order, each valid; returns them."""
    check(replies, f"{label}: the reply topic got no event of request {request_id}")
    replies.sort(key=lambda e: e["seq"])
    check([e["seq"] for e in replies] == list(range(len(replies))),
          f"{label}: seqs are not 0, 1, 2, ...: {[e['seq'] for e in replies]}")
    for event in replies:
        schemas.validate(event["type"], event, f"{label} {event['type']} seq {event['seq']}")
    terminals = [e for e in replies if e["type"] in ("final", "error")]
    check(len(terminals) == 1 and replies[-1] in terminals,
          f"{label}: not exactly one terminal event, last: {[e['type'] for e in replies]}")
    return replies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--bootstrap", "--tenant", "--reply-to", "--answer", "--cancel", "--refused"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--schemas", type=pathlib.Path, required=True)
    parser.add_argument("--catalog", type=pathlib.Path, required=True)
    args = parser.parse_args()
    schemas = Schemas(args.schemas)
    replies = read_topic(args.bootstrap, args.reply_to)

    # The answer.
    status, stdout, stderr = run_output(args.answer)
    check(status == 0, f"answer run: exit {status}")
    final_line = re.search(r"\[final\] id=(\S+) model=(\S+)", stderr)
    if check(final_line, "answer run: no '[final] id=... model=...' line on stderr"):
        request_id, printed_model = final_line.groups()
        events = check_replies(events_of(replies, request_id, id=request_id), schemas, request_id, "answer")
        chunks = [e for e in events if e["type"] == "chunk"]
        final = events[-1] if events else {}
        if check(final.get("type") == "final", f"answer: the terminal event is {final}"):
            text = "".join(c["delta"] for c in chunks)
            check(len(chunks) > 1, f"answer: {len(chunks)} chunk(s): the answer did not stream")
            check(text == final["content"], f"answer: the chunks say {text!r}, the final {final['content']!r}")
            check(stdout == final["content"] + "\n",
                  f"answer: the client printed {stdout!r}, the final's content is {final['content']!r}")
            check(final["model"] in catalog_ids(args.catalog), f"answer: model {final['model']!r} is no catalog id")
            check(printed_model == final["model"], f"answer: printed model {printed_model}, final {final['model']}")
            check(chunks and chunks[0].get("model") == final["model"],
                  f"answer: the first chunk names model {chunks[0].get('model') if chunks else None}")
            prompts = [r for r in read_topic(args.bootstrap, "cascade.requests")
                       if json.loads(r.value()).get("id") == request_id]
            if check(len(prompts) == 1, f"answer: {len(prompts)} prompt records of {request_id} on cascade.requests"):
                key, expected = prompts[0].key().decode(), prompt_event_key(json.loads(prompts[0].value()))
                check(key == expected, f"answer: the prompt's key is {key!r}, not its prompt event key {expected!r}")
            costs = wait_for_events(args.bootstrap, "cascade.ledger", args.tenant, request_id)
            if check(costs, f"answer: no cost event of {request_id} on cascade.ledger"):
                schemas.validate("cost", costs[0], "answer cost event")
                check(costs[0]["model"] == final["model"] and costs[0]["cost_usd"] == final["cost_usd"],
                      f"answer: the cost event {costs[0]} disagrees with the final")
            print(f"answer: keyed by its prompt event key; {len(chunks)} chunks then a final from {final['model']} "
                  f"({final['provider']}), ${final['cost_usd']:.8f}; printed text equals its content; "
                  f"cost event on cascade.ledger")

    # The cancel.
    status, stdout, stderr = run_output(args.cancel)
    check(status == 0, f"cancel run: exit {status}")
    cancel_line = re.search(r"\[cancel sent for (\S+)\]", stderr)
    if check(cancel_line, "cancel run: no '[cancel sent for ...]' line on stderr"):
        request_id = cancel_line.group(1)
        cancels = events_of(read_topic(args.bootstrap, "cascade.cancels"), request_id, id=request_id)
        if check(len(cancels) == 1, f"cancel: {len(cancels)} cancel events of {request_id} on cascade.cancels"):
            schemas.validate("cancel", cancels[0], "cancel event")
            check(cancels[0]["tenant"] == args.tenant, f"cancel: tenant {cancels[0]['tenant']}, not {args.tenant}")
        events = check_replies(events_of(replies, request_id, id=request_id), schemas, request_id, "cancel")
        terminal = events[-1] if events else {}
        check(terminal.get("error", {}).get("code") == "cancelled",
              f"cancel: the terminal event is {terminal}, not an error 'cancelled'")
        check(re.search(rf"\[error\] id={request_id} code=cancelled", stderr),
              "cancel run: no '[error] id=... code=cancelled' line on stderr")
        print(f"cancel: a valid cancel event on cascade.cancels; the request ended after {len(events) - 1} chunk(s) "
              f"with {terminal.get('type')} {terminal.get('error', {}).get('code')}")

    # The refusal.
    status, stdout, stderr = run_output(args.refused)
    check(status == 1, f"refused run: exit {status}")
    error_line = re.search(r"\[error\] id=(\S+) code=(\S+)", stderr)
    if check(error_line, "refused run: no '[error] id=... code=...' line on stderr"):
        request_id, code = error_line.groups()
        events = check_replies(events_of(replies, request_id, id=request_id), schemas, request_id, "refused")
        check(code == "invalid_request" and [e["type"] for e in events] == ["error"],
              f"refused: printed code {code}, reply events {events}")
        letters = wait_for_events(args.bootstrap, "cascade.dlq", args.tenant, request_id)
        if check(len(letters) == 1, f"refused: {len(letters)} dead letters of {request_id} on cascade.dlq"):
            schemas.validate("dead-letter", letters[0], "dead letter")
            check(json.loads(letters[0]["payload"])["model"] == "gpt-9", f"refused: dead letter {letters[0]}")
        print("refused: one error 'invalid_request' on the reply topic, a dead letter on cascade.dlq")

    for text in problems:
        print(f"FAIL: {text}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
