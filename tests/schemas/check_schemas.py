#!/usr/bin/python3
"""Holds schemas/*.schema.json against what schema_samples wrote with
Cascade's own code (tests/schemas/schema_samples.cpp):

- every schema is a valid draft 2020-12 schema with $id, title, description
  and a description on every field;
- every produced event validates against its schema, and stops validating
  when any field the schema requires is dropped (so nothing passes vacuously);
- every field a produced event carries is declared in its schema;
- the prompt and cancel schemas agree with parse_prompt_event and
  parse_cancel_event on every payload of the corpus, except the payloads
  marked as beyond what JSON Schema can say (or checked after parsing), and
  those must disagree in the way they say;
- the enumerations the schemas list are the code's.

Exits 1 listing every disagreement. Debian's python3-jsonschema (4.10).
"""
import argparse
import copy
import json
import pathlib
import sys

import jsonschema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Free-form objects the schemas describe without listing their keys.
FREE_FORM_KEYS = {"metadata"}

problems = []


def problem(text):
    problems.append(text)


def load_schemas(directory):
    schemas = {}
    for path in sorted(directory.glob("*.schema.json")):
        name = path.name[: -len(".schema.json")]
        schema = json.loads(path.read_text())
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            problem(f"{path.name}: not a valid schema: {error.message}")
            continue
        if schema.get("$schema") != DRAFT:
            problem(f"{path.name}: $schema is not {DRAFT}")
        for key in ("$id", "title", "description"):
            if not schema.get(key):
                problem(f"{path.name}: no {key}")
        for where, field in fields_of(schema):
            if "description" not in field:
                problem(f"{path.name}: field {where} has no description")
        schemas[name] = schema
    return schemas


def fields_of(node, where=""):
    """Every field a schema declares (`properties` entries, nested through
    `items` and `$defs`), with its path; not the constraints of if/then/else,
    anyOf and the like, which restate fields declared elsewhere."""
    if not isinstance(node, dict):
        return
    for name, field in node.get("properties", {}).items():
        yield f"{where}.{name}".lstrip("."), field
        yield from fields_of(field, f"{where}.{name}")
    if "items" in node:
        yield from fields_of(node["items"], where)
    for name, definition in node.get("$defs", {}).items():
        yield from fields_of(definition, f"$defs.{name}")


def resolve(root, node):
    """The node with its local $ref (#/$defs/...) merged in."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        merged = {k: v for k, v in node.items() if k != "$ref"}
        merged.update(target)
        node = merged
    return node


def required_paths(root, node, instance, path=()):
    """Paths of the fields of `instance` the schema requires, nested ones too."""
    node = resolve(root, node)
    if isinstance(instance, dict):
        for key in node.get("required", []):
            if key in instance:
                yield path + (key,)
        for key, field in node.get("properties", {}).items():
            if key in instance:
                yield from required_paths(root, field, instance[key], path + (key,))
    elif isinstance(instance, list) and "items" in node:
        for index, element in enumerate(instance):
            yield from required_paths(root, node["items"], element, path + (index,))


def undeclared_fields(root, node, instance, path=()):
    """Fields of `instance` its schema does not declare."""
    node = resolve(root, node)
    if isinstance(instance, dict) and "properties" in node:
        for key, value in instance.items():
            if key not in node["properties"]:
                yield path + (key,)
            elif key not in FREE_FORM_KEYS:
                yield from undeclared_fields(root, node["properties"][key], value, path + (key,))
    elif isinstance(instance, list) and "items" in node:
        for index, element in enumerate(instance):
            yield from undeclared_fields(root, node["items"], element, path + (index,))


def without(instance, path):
    copied = copy.deepcopy(instance)
    target = copied
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return copied


def dotted(path):
    return ".".join(str(part) for part in path)


def first_error(validator, instance):
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    return f"{dotted(error.absolute_path) or '(event)'}: {error.message[:160]}" if error else ""


def check_produced(schemas, produced):
    checked = dropped = 0
    for name, schema in schemas.items():
        files = sorted((produced / name).glob("*.json"))
        if not files:
            problem(f"{name}: schema_samples wrote no {name} event")
        validator = jsonschema.Draft202012Validator(schema)
        for path in files:
            where = f"{name}/{path.name}"
            event = json.loads(path.read_bytes())
            checked += 1
            if not validator.is_valid(event):
                problem(f"{where} does not validate: {first_error(validator, event)}")
                continue
            for field in undeclared_fields(schema, schema, event):
                problem(f"{where}: field {dotted(field)} is not declared in {name}.schema.json")
            for field in required_paths(schema, schema, event):
                dropped += 1
                if validator.is_valid(without(event, field)):
                    problem(f"{where}: still valid without required field {dotted(field)}")
    for directory in sorted(produced.iterdir()):
        if directory.name not in schemas:
            problem(f"schema_samples wrote {directory.name} events, but schemas/ has no {directory.name}.schema.json")
    return checked, dropped


def check_cases(name, schema, path):
    """The schema and the code's parser agree on every payload of the corpus."""
    validator = jsonschema.Draft202012Validator(schema)
    counts = {"accepted": 0, "rejected": 0, "schema_cannot_say": 0, "checked_later": 0}
    for line in path.read_text().splitlines():
        case = json.loads(line)
        label = f"{name} corpus '{case['name']}'"
        try:
            instance = json.loads(case["payload"])
        except ValueError as error:
            problem(f"{label}: the payload is not JSON ({error}); the corpus is for rules a schema can state")
            continue
        schema_accepts = validator.is_valid(instance)
        code_accepts = case["accepted"]
        if "schema_cannot_say" in case:
            counts["schema_cannot_say"] += 1
            if code_accepts or not schema_accepts:
                problem(f"{label} is marked beyond the schema ({case['schema_cannot_say']}) but the code "
                        f"{'accepts' if code_accepts else 'refuses'} it and the schema "
                        f"{'accepts' if schema_accepts else 'refuses'} it")
        elif "checked_later" in case:
            counts["checked_later"] += 1
            if not code_accepts or schema_accepts:
                problem(f"{label} is marked checked after parsing ({case['checked_later']}) but the parser "
                        f"{'accepts' if code_accepts else 'refuses'} it and the schema "
                        f"{'accepts' if schema_accepts else 'refuses'} it")
        elif schema_accepts != code_accepts:
            if code_accepts:
                problem(f"{label}: the code accepts it, the schema refuses it: {first_error(validator, instance)}")
            else:
                problem(f"{label}: the code refuses it ({case['error'][:160]}), the schema accepts it")
        else:
            counts["accepted" if code_accepts else "rejected"] += 1
    if counts["accepted"] < 5 or counts["rejected"] < 5:
        problem(f"{name} corpus: too few agreeing cases to mean anything: {counts}")
    return counts


def check_vocabulary(schemas, words):
    def listed(schema, *path, key="enum"):
        node = schemas[schema]
        for part in path:
            node = resolve(schemas[schema], node)["properties"][part]
        node = resolve(schemas[schema], node)
        return {value for value in node.get(key, []) if value is not None}

    def same(label, in_schema, in_code):
        if in_schema != set(in_code):
            problem(f"{label}: the schema lists {sorted(in_schema)}, the code has {sorted(in_code)}")

    same("error.code", listed("error", "error", "code", key="examples"), words["error_codes"])
    for schema in ("chunk", "final", "cost"):
        same(f"{schema}.cache", listed(schema, "cache"), words["cache_outcomes"])
    same("prompt.preference", listed("prompt", "preference"), words["preferences"])
    same("prompt.priority", listed("prompt", "priority"), words["priorities"])
    same("prompt.cache", listed("prompt", "cache"), words["cache_modes"])
    same("alert.period", listed("alert", "period"), words["budget_periods"])
    tiers = set(words["tiers"])
    for label, examples in (("chunk.route.tier", listed("chunk", "route", "tier", key="examples")),
                            ("final.route.tier", listed("final", "route", "tier", key="examples") - {"cache"}),
                            ("quality.tier", listed("quality", "tier", key="examples")),
                            ("quality.calibration.reference.tier",
                             listed("quality", "calibration", "reference", "tier", key="examples"))):
        same(label, examples, tiers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=pathlib.Path, required=True)
    parser.add_argument("--samples", type=pathlib.Path, required=True)
    args = parser.parse_args()

    schemas = load_schemas(args.schemas)
    print(f"schemas: {', '.join(schemas)}")
    checked, dropped = check_produced(schemas, args.samples / "produced")
    print(f"produced events: {checked} checked; {dropped} copies with a required field dropped, each refused")
    for name in ("prompt", "cancel"):
        counts = check_cases(name, schemas[name], args.samples / "cases" / f"{name}.jsonl")
        print(f"{name} corpus: schema and parser agree on {counts['accepted']} accepted and {counts['rejected']} "
              f"refused payloads; {counts['schema_cannot_say']} beyond JSON Schema, "
              f"{counts['checked_later']} checked after parsing, each disagreeing as marked")
    check_vocabulary(schemas, json.loads((args.samples / "vocabulary.json").read_text()))

    for text in problems:
        print(f"FAIL: {text}")
    if problems:
        print(f"{len(problems)} disagreement(s) between schemas/ and the code")
        return 1
    print("schemas/ agree with the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
