#!/usr/bin/env python3
"""Builds config/models.yaml from LiteLLM's public price catalog.

Which models Cascade offers, under which id, from which provider and in which
tier is our decision and lives in CURATED_MODELS below. Prices and limits are
facts we do not want to type by hand, so they come from LiteLLM's
model_prices_and_context_window.json (USD per token; we publish USD per 1M).

Usage:
  scripts/build_model_catalog.py [--prices PATH] [--out PATH] [--price-version V]

Defaults: ../shared/data/pricing/model_prices_and_context_window.json next to
the repo, config/models.yaml in the repo, price version "litellm-2026-07".
Exits non-zero (writing nothing) when a curated model is missing from the
price file or lacks a price, so a refresh never silently drops a model.
"""
import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PRICES = REPO.parent / "shared" / "data" / "pricing" / "model_prices_and_context_window.json"
DEFAULT_OUT = REPO / "config" / "models.yaml"
DEFAULT_PRICE_VERSION = "litellm-2026-07"

# (catalog id, provider, upstream model name, tier, LiteLLM key)
# provider = providers.<name> in config/cascade.yaml.
# Tiers are about capability, not price: small = cheap/fast models for simple
# asks, medium = strong general models, large = frontier and reasoning models
# for the hardest prompts. The router takes the cheapest available model of a
# tier, so a model placed too low here would get prompts it cannot handle.
CURATED_MODELS = [
    # OpenAI
    ("gpt-5-nano", "openai", "gpt-5-nano", "small", "gpt-5-nano"),
    ("gpt-4.1-nano", "openai", "gpt-4.1-nano", "small", "gpt-4.1-nano"),
    ("gpt-4o-mini", "openai", "gpt-4o-mini", "small", "gpt-4o-mini"),
    ("gpt-4.1-mini", "openai", "gpt-4.1-mini", "small", "gpt-4.1-mini"),
    ("gpt-5-mini", "openai", "gpt-5-mini", "medium", "gpt-5-mini"),
    ("gpt-5.4-mini", "openai", "gpt-5.4-mini", "medium", "gpt-5.4-mini"),
    ("o4-mini", "openai", "o4-mini", "medium", "o4-mini"),
    ("gpt-4.1", "openai", "gpt-4.1", "medium", "gpt-4.1"),
    ("gpt-4o", "openai", "gpt-4o", "medium", "gpt-4o"),
    ("gpt-5", "openai", "gpt-5", "large", "gpt-5"),
    ("o3", "openai", "o3", "large", "o3"),
    ("gpt-5.4", "openai", "gpt-5.4", "large", "gpt-5.4"),
    ("gpt-5.5", "openai", "gpt-5.5", "large", "gpt-5.5"),
    # Anthropic
    ("claude-haiku-4-5", "anthropic", "claude-haiku-4-5", "small", "claude-haiku-4-5"),
    ("claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6", "medium", "claude-sonnet-4-6"),
    ("claude-sonnet-5", "anthropic", "claude-sonnet-5", "medium", "claude-sonnet-5"),
    ("claude-opus-4-8", "anthropic", "claude-opus-4-8", "large", "claude-opus-4-8"),
    ("claude-opus-5", "anthropic", "claude-opus-5", "large", "claude-opus-5"),
    # Google Gemini
    ("gemini-2.5-flash-lite", "gemini", "gemini-2.5-flash-lite", "small", "gemini/gemini-2.5-flash-lite"),
    ("gemini-3.1-flash-lite", "gemini", "gemini-3.1-flash-lite", "small", "gemini/gemini-3.1-flash-lite"),
    ("gemini-2.5-flash", "gemini", "gemini-2.5-flash", "medium", "gemini/gemini-2.5-flash"),
    ("gemini-3.5-flash", "gemini", "gemini-3.5-flash", "medium", "gemini/gemini-3.5-flash"),
    ("gemini-2.5-pro", "gemini", "gemini-2.5-pro", "large", "gemini/gemini-2.5-pro"),
    # Groq
    ("llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant", "small", "groq/llama-3.1-8b-instant"),
    ("gpt-oss-20b", "groq", "openai/gpt-oss-20b", "small", "groq/openai/gpt-oss-20b"),
    ("llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile", "medium", "groq/llama-3.3-70b-versatile"),
    ("gpt-oss-120b", "groq", "openai/gpt-oss-120b", "medium", "groq/openai/gpt-oss-120b"),
    # DeepSeek
    ("deepseek-chat", "deepseek", "deepseek-chat", "medium", "deepseek/deepseek-chat"),
    ("deepseek-reasoner", "deepseek", "deepseek-reasoner", "large", "deepseek/deepseek-reasoner"),
    # Mistral
    ("ministral-8b", "mistral", "ministral-8b-latest", "small", "mistral/ministral-8b-latest"),
    ("mistral-small", "mistral", "mistral-small-latest", "small", "mistral/mistral-small-latest"),
    ("codestral", "mistral", "codestral-latest", "medium", "mistral/codestral-latest"),
    ("mistral-medium", "mistral", "mistral-medium-latest", "medium", "mistral/mistral-medium-latest"),
    # Mistral Large 3 is the provider's flagship but not a frontier model: medium.
    ("mistral-large", "mistral", "mistral-large-latest", "medium", "mistral/mistral-large-latest"),
]

# Legacy model versions: priced so the ledger can bill and check them (pinned
# requests, replays of recorded traffic such as RouterBench's), never routed to
# (ModelCatalog::models() leaves them out).
LEGACY_MODELS = [
    ("gpt-3.5-turbo-1106", "openai", "gpt-3.5-turbo-1106", "small", "gpt-3.5-turbo-1106"),
    ("gpt-4-1106-preview", "openai", "gpt-4-1106-preview", "large", "gpt-4-1106-preview"),
]

# Where each provider's public API processes data by default, for
# data-residency tags (a request's metadata.residency; docs/routing.md, "Hard
# constraints"). A provider left out guarantees no region and never serves a
# request with a residency tag: Gemini's API may process data in any Google
# region. Deployments in other regions (Azure OpenAI in the EU, a self-hosted
# server) belong in an operator's own catalog file (catalog.file), as a
# provider of their own with its `regions`.
PROVIDER_REGIONS = {
    "openai": ["us"],
    "anthropic": ["us"],
    "groq": ["us"],
    "deepseek": ["cn"],
    "mistral": ["eu"],
}

# Capabilities the router requires of a model (catalog key -> LiteLLM flag):
# tools for requests with tools or tool messages, vision for image parts, json
# for response_format json_object/json_schema. A flag LiteLLM leaves out
# (null) counts as not supported: routing a request to a model that cannot
# serve it fails, while skipping a capable model only costs a little more.
CAPABILITY_FLAGS = (
    ("tools", "supports_function_calling"),
    ("vision", "supports_vision"),
    ("json", "supports_response_schema"),
)

HEADER = """\
# Cascade model catalog: which models exist, who serves them, their tier, limits
# and USD prices per 1M tokens.
#
# GENERATED by scripts/build_model_catalog.py -- do not edit by hand; change the
# curated list in the script and re-run it.
# Prices and limits come from LiteLLM's public price catalog, {source}
# (price version {price_version}): Copyright (c) 2023 Berri AI, MIT License,
# https://github.com/BerriAI/litellm.
#
# Fields: id = catalog id used in events; provider = providers.<name> in
# cascade.yaml; upstream_model = the name sent to the provider; tier =
# small|medium|large; cached_input_per_mtok = price of input read from the
# provider's prompt cache (absent = no cache discount, billed as input);
# cache_write_per_mtok = price of input written to the provider's prompt cache
# (absent = billed as input); batch_input_per_mtok / batch_output_per_mtok =
# prices through the provider's batch API (absent = no batch discount);
# legacy: true = priced for billing, never routed to; capabilities = what the
# model can do beyond chat (tools, vision, json; from LiteLLM's supports_*
# flags; a model without the key is taken as capable of everything);
# regions = where the model processes data (absent = its provider's, from
# provider_regions; none = no residency guarantee).
"""


def per_mtok(per_token):
    # Rounded so that 1.5e-07 * 1e6 prints as 0.15, not 0.15000000000000002.
    return round(per_token * 1_000_000, 6)


def fmt(number):
    if isinstance(number, bool):
        return "true" if number else "false"
    return repr(float(number)) if isinstance(number, float) else str(number)


def build_entry(prices, catalog_id, provider, upstream, tier, key):
    entry = prices.get(key)
    if entry is None:
        raise ValueError(f"{catalog_id}: key '{key}' not in the price file")
    if entry.get("mode") not in (None, "chat"):
        raise ValueError(f"{catalog_id}: '{key}' is not a chat model (mode={entry.get('mode')})")
    for field in ("input_cost_per_token", "output_cost_per_token"):
        if not isinstance(entry.get(field), (int, float)):
            raise ValueError(f"{catalog_id}: '{key}' has no {field}")
    context = entry.get("max_input_tokens") or entry.get("max_tokens")
    max_output = entry.get("max_output_tokens") or entry.get("max_tokens")
    if not context or not max_output:
        raise ValueError(f"{catalog_id}: '{key}' has no context window / max output tokens")
    model = {
        "id": catalog_id,
        "provider": provider,
        "upstream_model": upstream,
        "tier": tier,
        "context_window": int(context),
        "max_output_tokens": int(max_output),
        "input_per_mtok": per_mtok(entry["input_cost_per_token"]),
        "output_per_mtok": per_mtok(entry["output_cost_per_token"]),
        "capabilities": [name for name, flag in CAPABILITY_FLAGS if entry.get(flag) is True],
    }
    cached = entry.get("cache_read_input_token_cost")
    if isinstance(cached, (int, float)):
        model["cached_input_per_mtok"] = per_mtok(cached)
    # A 0 here (DeepSeek) means "no separate write price", not "writes are free":
    # such providers bill a cache miss as plain input, which is the default.
    write = entry.get("cache_creation_input_token_cost")
    if isinstance(write, (int, float)) and write > 0:
        model["cache_write_per_mtok"] = per_mtok(write)
    for field, out in (("input_cost_per_token_batches", "batch_input_per_mtok"),
                       ("output_cost_per_token_batches", "batch_output_per_mtok")):
        batch = entry.get(field)
        if isinstance(batch, (int, float)) and batch > 0:
            model[out] = per_mtok(batch)
    return model


def fmt_list(items):
    return "[" + ", ".join(items) + "]"


def render(models, price_version, source_name):
    lines = [HEADER.format(source=source_name, price_version=price_version), f'price_version: "{price_version}"', ""]
    lines.append("# Data-residency regions of each provider's default API endpoint (see the")
    lines.append("# PROVIDER_REGIONS comment in scripts/build_model_catalog.py).")
    lines.append("provider_regions:")
    for provider, regions in PROVIDER_REGIONS.items():
        lines.append(f"  {provider}: {fmt_list(regions)}")
    lines.append("")
    lines.append("models:")
    current_provider = None
    for m in models:
        group = "legacy versions: priced for billing, never routed to" if m.get("legacy") else m["provider"]
        if group != current_provider:
            current_provider = group
            lines.append(f"  # {current_provider}")
        lines.append(f"  - id: {m['id']}")
        for field in ("provider", "upstream_model", "tier", "context_window", "max_output_tokens",
                      "input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                      "cache_write_per_mtok", "batch_input_per_mtok", "batch_output_per_mtok", "legacy"):
            if field in m:
                lines.append(f"    {field}: {fmt(m[field])}")
        lines.append(f"    capabilities: {fmt_list(m['capabilities'])}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", type=Path, default=DEFAULT_PRICES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--price-version", default=DEFAULT_PRICE_VERSION)
    args = parser.parse_args()

    with args.prices.open(encoding="utf-8") as f:
        prices = json.load(f)

    ids = [m[0] for m in CURATED_MODELS + LEGACY_MODELS]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        sys.exit(f"duplicate catalog ids: {sorted(duplicates)}")

    try:
        models = [build_entry(prices, *m) for m in CURATED_MODELS]
        for m in LEGACY_MODELS:
            models.append({**build_entry(prices, *m), "legacy": True})
    except ValueError as e:
        sys.exit(f"error: {e}")

    text = render(models, args.price_version, args.prices.name)
    # core/CMakeLists.txt embeds this file in a raw string literal.
    if ')cascade_yaml"' in text:
        sys.exit("error: output contains the raw string delimiter )cascade_yaml\"")
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(models)} models to {args.out}")


if __name__ == "__main__":
    main()
