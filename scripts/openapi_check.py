#!/usr/bin/env python3
"""Checks docs/openapi.yaml, and a live daemon's answers against it.

    openapi_check.py spec [SPEC]
        validates the description itself (openapi-spec-validator).
    openapi_check.py live HOST:PORT TOKEN [SPEC]
        sends every request in SAMPLES to a daemon that tests/openapi.rs
        started (jobs `hello` and `fail`, `allow_job_api = true`, the auth
        token TOKEN), and checks each answer: its path and method are
        described, its status is one the operation lists, its media type is
        one that status lists, and a JSON body validates against the
        schema. Then:
          - every operation of the description must have been answered with
            a 2xx at least once (no route described that the daemon lacks),
            but those marked `x-tickd-cluster-only`;
          - every other method on a described path must be 405 with an
            `Allow` naming exactly the described methods (no method the
            daemon answers that is not described).
        With OPENAPI_READ_TOKEN set (a `[[tokens]]` token of role read),
        also the 403 of a role too low, and the read token's redaction.
        Exits 1 with one line per problem.

Needs the PyPI packages openapi-spec-validator (which brings jsonschema
and referencing); scripts/test.sh installs them when missing.
"""

import http.client
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "docs" / "openapi.yaml"
METHODS = ["get", "put", "post", "delete"]


def load(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def check_spec(spec_path):
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    spec, _ = read_from_filename(str(spec_path))
    validate(spec)
    print(f"{spec_path}: valid OpenAPI {spec['openapi']}")


class Daemon:
    def __init__(self, addr, token):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token

    def send(self, method, path, body=None, headers=None, auth=True):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": f"{self.host}:{self.port}"}
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
        if method in ("POST", "PUT"):
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), raw


class Checker:
    def __init__(self, spec):
        from jsonschema import Draft202012Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.spec = spec
        resource = DRAFT202012.create_resource(spec)
        self.registry = Registry().with_resource("urn:tickd-openapi", resource)
        self.validator_cls = Draft202012Validator
        self.problems = []
        self.covered = set()
        self.templates = []
        for template in spec["paths"]:
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            self.templates.append((template, re.compile(pattern)))

    def template_of(self, path):
        path = path.split("?", 1)[0]
        for template, rx in self.templates:
            if rx.match(path):
                return template
        return None

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def schema_validate(self, schema, value, where):
        # Refs inside are `#/components/...`: resolve them against the
        # whole description, held as one resource.
        wrapped = dict(schema)
        wrapped["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        wrapped["$id"] = "urn:tickd-check"
        text = json.dumps(wrapped).replace('"#/components/', '"urn:tickd-openapi#/components/')
        v = self.validator_cls(json.loads(text), registry=self.registry)
        for err in sorted(v.iter_errors(value), key=lambda e: list(e.path)):
            loc = "/".join(str(p) for p in err.absolute_path)
            self.problems.append(f"{where}: body at /{loc}: {err.message[:300]}")

    def answer(self, method, path, status, headers, raw):
        where = f"{method} {path} -> {status}"
        template = self.template_of(path)
        if template is None:
            self.problems.append(f"{where}: path not described")
            return
        op = self.spec["paths"][template].get(method.lower())
        if op is None:
            self.problems.append(f"{where}: method not described for {template}")
            return
        if 200 <= status < 300:
            self.covered.add((template, method.lower()))
        resp = op["responses"].get(str(status))
        if resp is None:
            self.problems.append(f"{where}: status not described for {method} {template}")
            return
        resp = self.resolve(resp)
        for name, h in resp.get("headers", {}).items():
            h = self.resolve(h)
            value = headers.get(name.lower())
            if value is None:
                if h.get("required"):
                    self.problems.append(f"{where}: header {name} missing")
                continue
            schema = h.get("schema", {})
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    self.problems.append(f"{where}: header {name}: {value!r} is not an integer")
                    continue
            self.schema_validate(schema, value, f"{where}: header {name}")
        content = resp.get("content", {})
        ctype = headers.get("content-type", "").split(";")[0].strip()
        if not content:
            return
        if ctype not in content:
            self.problems.append(f"{where}: content type {ctype!r} not described ({list(content)})")
            return
        schema = content[ctype].get("schema")
        if schema is None:
            return
        if ctype == "application/json":
            try:
                value = json.loads(raw)
            except ValueError as e:
                self.problems.append(f"{where}: body is not JSON: {e}")
                return
        else:
            value = raw.decode("utf-8", "replace")
        self.schema_validate(schema, value, where)


def live(addr, token, spec_path):
    spec = load(spec_path)
    d = Daemon(addr, token)
    c = Checker(spec)

    def call(method, path, body=None, expect=None, **kw):
        status, headers, raw = d.send(method, path, body, **kw)
        if expect is not None and status != expect:
            c.problems.append(f"{method} {path}: expected {expect}, got {status}: {raw[:200]!r}")
        c.answer(method, path, status, headers, raw)
        return status, headers, raw

    call("GET", "/healthz", expect=200, auth=False)
    call("GET", "/", expect=200)
    call("GET", "/metrics", expect=200)
    call("GET", "/status", expect=200)
    call("GET", "/status", expect=401, auth=False)
    call("GET", "/status", expect=403, headers={"Host": "evil.example"})
    call("GET", "/cluster", expect=404)
    call("GET", "/jobs", expect=200)
    call("GET", "/jobs?limit=1", expect=200)
    call("GET", "/jobs?limit=0", expect=400)
    call("GET", "/jobs/hello?next=3", expect=200)
    call("GET", "/jobs/nope", expect=404)
    _, _, raw = call("POST", "/jobs/hello/run", {"k": "v"}, expect=202)
    run_id = json.loads(raw)["run_id"]
    call("POST", "/jobs/fail/run", expect=202)
    call("POST", "/jobs/nope/run", expect=404)
    call("POST", "/jobs/hello/run", expect=415, headers={"Content-Type": "text/plain"})
    call("POST", "/jobs/hello/pause", expect=200)
    call("POST", "/jobs/hello/resume", expect=200)
    call("GET", "/runs", expect=200)
    call("GET", "/runs?job=hello&limit=5", expect=200)
    call("GET", "/runs?state=sleeping", expect=400)
    call("GET", f"/runs/{run_id}", expect=200)
    call("GET", "/runs/987654321", expect=404)
    _, headers, raw = call("GET", f"/runs/{run_id}/output?follow=1", expect=200)
    if b"hi\n" not in raw:
        c.problems.append(f"GET /runs/{run_id}/output?follow=1: no 'hi' in {raw[:200]!r}")
    call("GET", f"/runs/{run_id}/output?from=1", expect=200)
    call("GET", f"/runs/{run_id}/output?from=minus", expect=400)
    call("GET", "/runs/987654321/output", expect=404)
    call("POST", f"/runs/{run_id}/cancel", expect=200)
    call("POST", "/runs/987654321/cancel", expect=404)
    call("PUT", "/jobs/api-one", {"command": ["true"], "every": "1h"}, expect=201)
    call("PUT", "/jobs/api-one", {"command": ["true"], "every": "2h"}, expect=200)
    call("PUT", "/jobs/hello", {"command": ["true"]}, expect=409)
    call("DELETE", "/jobs/api-one", expect=200)
    call("DELETE", "/jobs/hello", expect=409)
    call("POST", "/reload", expect=200)
    read_token = os.environ.get("OPENAPI_READ_TOKEN")
    if read_token:
        read = {"Authorization": f"Bearer {read_token}"}
        call("POST", "/jobs/hello/run", expect=403, auth=False, headers=read)
        _, _, raw = call("GET", "/jobs/hello", expect=200, auth=False, headers=read)
        env = json.loads(raw)["definition"]["env"]
        if env != {"SECRET": "<redacted>"}:
            c.problems.append(f"GET /jobs/hello with a read token: env {env}")
    # The runs of the samples above, now finished, once more: their
    # finished form validates too.
    call("GET", "/runs?limit=10", expect=200)
    call("GET", "/jobs/fail", expect=200)

    for template, methods in spec["paths"].items():
        described = [m for m in METHODS if m in methods]
        path = template.replace("{name}", "hello").replace("{id}", str(run_id))
        for op in described:
            if methods[op].get("x-tickd-cluster-only"):
                continue  # 404 outside cluster mode, checked above
            if (template, op) not in c.covered:
                c.problems.append(f"{op.upper()} {template}: described but never answered 2xx")
        expected_allow = {m.upper() for m in described}
        if "get" in described:
            expected_allow.add("HEAD")
        for m in METHODS:
            if m in described:
                continue
            status, headers, raw = d.send(m.upper(), path, {} if m in ("post", "put") else None)
            if status != 405:
                c.problems.append(f"{m.upper()} {path}: not described, answered {status} (want 405)")
                continue
            allow = {a.strip() for a in headers.get("allow", "").split(",") if a.strip()}
            if allow != expected_allow:
                c.problems.append(
                    f"{m.upper()} {path}: Allow {sorted(allow)}, described {sorted(expected_allow)}")

    for p in c.problems:
        print(p)
    print(f"{len(c.covered)} operations answered; {len(c.problems)} problems")
    return 1 if c.problems else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "spec":
        check_spec(Path(argv[2]) if len(argv) > 2 else DEFAULT_SPEC)
        return 0
    if len(argv) >= 4 and argv[1] == "live":
        return live(argv[2], argv[3], Path(argv[4]) if len(argv) > 4 else DEFAULT_SPEC)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
