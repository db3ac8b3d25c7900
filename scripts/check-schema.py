#!/usr/bin/env python3
"""check-schema.py: check schema/fleet.schema.json against the repository's manifests.

    python3 scripts/check-schema.py          (needs: pip install jsonschema)

- the schema itself must be a valid JSON Schema draft 2020-12 document;
- every property the schema declares must carry a description (editors show it);
- fleet.json and examples/*/fleet.json must be valid;
- every schema/bad/*.json must be rejected (each holds one mistake, named in its file name).
Exits 1 on the first class of failure, after printing all failures of it.
"""
import json
import pathlib
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("check-schema: python module 'jsonschema' missing; pip install jsonschema")

repo = pathlib.Path(__file__).resolve().parent.parent
schema_path = repo / "schema" / "fleet.schema.json"
schema = json.loads(schema_path.read_text())
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)


def undescribed(node, path, skip):
    """Yield paths of declared properties (and $defs) without a description."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}"
            if key in ("properties", "$defs") and not skip and isinstance(value, dict):
                for name, sub in value.items():
                    if isinstance(sub, dict) and "description" not in sub:
                        yield f"{here}/{name}"
            # if/then/not only restrict properties declared elsewhere.
            yield from undescribed(value, here, skip or key in ("if", "then", "not"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from undescribed(value, f"{path}/{i}", skip)


failures = [f"no description: {p}" for p in undescribed(schema, "#", False)]

good = [repo / "fleet.json"] + sorted(repo.glob("examples/*/fleet.json"))
for path in good:
    errors = sorted(validator.iter_errors(json.loads(path.read_text())), key=lambda e: list(e.absolute_path))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        failures.append(f"{path.relative_to(repo)}: {where}: {error.message}")
    if not errors:
        print(f"valid    {path.relative_to(repo)}")

bad = sorted((repo / "schema" / "bad").glob("*.json"))
for path in bad:
    errors = list(validator.iter_errors(json.loads(path.read_text())))
    if not errors:
        failures.append(f"{path.relative_to(repo)}: accepted, but it should be rejected")
        continue
    error = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    message = error.message if len(error.message) < 110 else error.message[:107] + "..."
    print(f"rejected {path.name}: {where}: {message}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"check-schema: {len(good)} manifests valid, {len(bad)} bad manifests rejected")
