"""The Kafka key of a Cascade prompt event (docs/events.md, "Prompt event key").

    from prompt_key import prompt_event_key
    producer.produce("cascade.requests", key=prompt_event_key(event), value=json.dumps(event))

The key is "<tenant>/<32 hex digits>": the tenant, then the start of a SHA-256
of what makes two requests identical (everything Cascade's request fingerprint
covers except max_tokens, whose default only the workers know). A tenant's
distinct requests spread over every partition, hence every worker; identical
ones share a partition, where the worker answers them with one model call.

The same function as Cascade's prompt_event_key (events/request_fingerprint.h),
checked against tests/events/prompt_event_key_vectors.json. Standard library only.
"""
import hashlib

VERSION = "cascade.prompt-key.v1"
HEX_DIGITS = 32


def _utf8(text):
    return text.encode("utf-8", "surrogatepass")


def _counted(data):
    return str(len(data)).encode() + b":" + data


def _number(x):
    # %.17g reads back as the same double: distinct values stay distinct.
    return ("%.17g" % x).encode()


def _value(v, out):
    """Appends the type-tagged form of a JSON value (the C++ CanonicalWriter's)."""
    if v is None:
        out.append(b"n")
    elif v is True:
        out.append(b"t")
    elif v is False:
        out.append(b"f")
    elif isinstance(v, int):
        out.append(b"i" + str(v).encode() + b";")
    elif isinstance(v, float):
        out.append(b"d" + _number(v) + b";")
    elif isinstance(v, str):
        out.append(b"s" + _counted(_utf8(v)))
    elif isinstance(v, (list, tuple)):
        out.append(b"a" + str(len(v)).encode() + b"[")
        for item in v:
            _value(item, out)
        out.append(b"]")
    elif isinstance(v, dict):
        # Keys in UTF-8 byte order, as Cascade's JSON objects keep them.
        out.append(b"o" + str(len(v)).encode() + b"{")
        for key, item in sorted(v.items(), key=lambda kv: _utf8(kv[0])):
            out.append(b"s" + _counted(_utf8(key)))
            _value(item, out)
        out.append(b"}")
    else:
        raise TypeError(f"not a JSON value: {v!r}")


def canonical_prompt_key(event):
    """The bytes prompt_event_key hashes. An optional field that is absent or
    null counts as absent, as Cascade reads it; `tools` counts only as a
    non-empty array."""
    out = [VERSION.encode(), b"\n"]
    out += [b"tenant ", _counted(_utf8(event["tenant"])), b"\n"]
    out += [b"model ", _counted(_utf8(event.get("model") or "auto")), b"\n"]
    out += [b"preference ", _counted(_utf8(event.get("preference") or "balanced")), b"\n"]
    temperature = event.get("temperature")
    out += [b"temperature ", b"-" if temperature is None else _number(float(temperature)), b"\n"]
    out.append(b"messages ")
    _value(event["messages"], out)
    out.append(b"\n")
    if event.get("response_format") is not None:
        out.append(b"response_format ")
        _value(event["response_format"], out)
        out.append(b"\n")
    if event.get("cascade") is not None:
        out.append(b"cascade t\n" if event["cascade"] else b"cascade f\n")
    tools = event.get("tools")
    if isinstance(tools, list) and tools:
        out.append(b"tools ")
        _value(tools, out)
        out.append(b"\n")
    if event.get("tool_choice") is not None:
        out.append(b"tool_choice ")
        _value(event["tool_choice"], out)
        out.append(b"\n")
    return b"".join(out)


def prompt_event_key(event):
    """The record key for a prompt event (a dict as it will be sent)."""
    digest = hashlib.sha256(canonical_prompt_key(event)).hexdigest()
    return event["tenant"] + "/" + digest[:HEX_DIGITS]
