#!/usr/bin/env python3
"""Ask Cascade for an answer over Kafka and print it as it streams.

    python3 cascade_client.py --bootstrap 127.0.0.1:9092 --tenant acme "Why is the sky blue?"

Sends one prompt event (schemas/prompt.schema.json) to the requests topic
keyed by prompt_event_key (prompt_key.py: the tenant and a hash of the
request), naming this app's own reply topic, and prints the chunk
events' text as it arrives (stdout), then the final event's model and cost
(stderr). With --cancel-after N it sends a cancel event
(schemas/cancel.schema.json) once N chunks have arrived.

Needs confluent-kafka: Debian's python3-confluent-kafka, or pip's confluent-kafka.
Exit status: 0 for an answer (or the cancel asked for), 1 for an error event
or no terminal event within --timeout seconds.
"""
import argparse
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from prompt_key import prompt_event_key


def parse_args():
    parser = argparse.ArgumentParser(description="Ask Cascade for an answer over Kafka.")
    parser.add_argument("prompt", nargs="?", default=os.environ.get("CASCADE_PROMPT", "Why is the sky blue?"))
    parser.add_argument("--bootstrap", default=os.environ.get("CASCADE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                        help="Kafka bootstrap servers (env CASCADE_KAFKA_BOOTSTRAP)")
    parser.add_argument("--tenant", default=os.environ.get("CASCADE_TENANT", "example"),
                        help="who pays: 1-128 characters from [A-Za-z0-9._:-] (env CASCADE_TENANT)")
    parser.add_argument("--reply-to", default=os.environ.get("CASCADE_REPLY_TO", "example.replies"),
                        help="this app's reply topic (env CASCADE_REPLY_TO)")
    parser.add_argument("--requests-topic", default="cascade.requests")
    parser.add_argument("--cancels-topic", default="cascade.cancels")
    parser.add_argument("--model", default="auto", help='"auto" or a catalog model id')
    parser.add_argument("--preference", default="balanced", choices=["cost", "balanced", "quality", "speed"])
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--cancel-after", type=int, metavar="N", help="cancel the request after N chunks")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the answer")
    return parser.parse_args()


def ensure_topic(bootstrap, topic, producer):
    """Makes sure the reply topic exists before anything is sent to it."""
    # Asking a producer for a topic's metadata creates the topic where the
    # cluster auto-creates topics (Cascade's embedded broker does; it does not
    # answer the admin API). Elsewhere, create it with the admin API.
    for attempt in range(50):
        found = producer.list_topics(topic, timeout=10).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if attempt == 0:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=-1)],
                                          request_timeout=10)
            try:
                futures[topic].result()
            except KafkaException as error:
                print(f"creating {topic}: {error}", file=sys.stderr)
        time.sleep(0.2)
    sys.exit(f"topic {topic} does not exist and could not be created")


def reply_consumer(bootstrap, topic, partitions):
    """Reads every partition of the reply topic from its current end."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "cascade-example",  # nothing is committed: partitions are assigned, not subscribed
        "enable.auto.commit": False,
        # Fetch as soon as the answer streams. On a real broker any record
        # ends the wait; Cascade's embedded broker answers every fetch.wait.max.ms.
        "fetch.wait.max.ms": 10,
    })
    # The end is read now, before the prompt is sent, so no reply can be missed.
    assignment = []
    for partition in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assignment.append(TopicPartition(topic, partition, high))
    consumer.assign(assignment)
    return consumer


def send(producer, topic, key, event):
    failures = []
    producer.produce(topic, key=key, value=json.dumps(event).encode(),
                     on_delivery=lambda error, _: error and failures.append(error))
    producer.flush(10)
    if failures or len(producer):
        sys.exit(f"could not send to {topic}: {failures or 'timed out'}")


def main():
    args = parse_args()
    # Java clients' partitioner, as Cascade's gateway uses: every client puts a
    # key on the same partition, so identical requests meet.
    producer = Producer({"bootstrap.servers": args.bootstrap, "partitioner": "murmur2_random",
                         "linger.ms": 0})
    partitions = ensure_topic(args.bootstrap, args.reply_to, producer)
    consumer = reply_consumer(args.bootstrap, args.reply_to, partitions)
    # Where the requests and cancels topics live, asked now: a producer asks
    # on its first record to a topic otherwise, which can take a second.
    for topic in (args.requests_topic, args.cancels_topic):
        producer.list_topics(topic, timeout=10)

    request_id = str(uuid.uuid4())  # the idempotency key: a new id asks again
    prompt = {
        "id": request_id,
        "tenant": args.tenant,
        "reply_to": args.reply_to,
        "messages": [{"role": "user", "content": args.prompt}],
        "model": args.model,
        "preference": args.preference,
        "stream": True,
    }
    if args.max_tokens:
        prompt["max_tokens"] = args.max_tokens
    # Keyed by the request, not the tenant: a tenant's requests spread over
    # every partition (every worker), identical ones share one.
    send(producer, args.requests_topic, prompt_event_key(prompt), prompt)

    seen = set()      # (id, seq): a worker crash may deliver events again
    streamed = False  # whether any text was printed
    chunks = 0
    cancelled = False
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            event = json.loads(record.value())
            # The reply topic may be shared: keep this request's events only.
            if event.get("id") != request_id or event.get("seq") in seen:
                continue
            seen.add(event.get("seq"))

            if event["type"] == "chunk":
                if "model" in event:  # the first chunk says who answers
                    print(f"[{event['model']} via {event.get('provider', '?')}, cache {event['cache']}]",
                          file=sys.stderr)
                sys.stdout.write(event["delta"])
                sys.stdout.flush()
                streamed = streamed or bool(event["delta"])
                chunks += 1
                if args.cancel_after is not None and chunks >= args.cancel_after and not cancelled:
                    send(producer, args.cancels_topic, request_id, {
                        "v": 1, "type": "cancel", "id": request_id, "tenant": args.tenant,
                        "reason": "example", "ts_ms": int(time.time() * 1000)})
                    cancelled = True
                    print(f"\n[cancel sent for {request_id}]", file=sys.stderr)
            elif event["type"] == "final":
                # The final's content is the answer; chunks only show progress.
                print(("" if streamed else event["content"]))
                route = event["route"]
                print(f"[final] id={request_id} model={event['model']} provider={event['provider']} "
                      f"cache={event['cache']} cost_usd={event['cost_usd']:.8f} tier={route['tier']} "
                      f"reason={route['reason']!r}", file=sys.stderr)
                return 0
            elif event["type"] == "error":
                print(f"\n[error] id={request_id} code={event['error']['code']} "
                      f"message={event['error']['message']!r}", file=sys.stderr)
                return 0 if cancelled and event["error"]["code"] == "cancelled" else 1
            # Any other type is a newer kind of reply: skip it.
        print(f"\nno answer to {request_id} within {args.timeout:g} s", file=sys.stderr)
        return 1
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
