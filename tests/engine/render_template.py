#!/usr/bin/python3
"""Reference renderer for chat templates: Python's jinja2, set up as Hugging Face
transformers renders chat templates (sandboxed, trim_blocks, lstrip_blocks, the
loopcontrols extension, {% generation %} blocks, raise_exception, a `safe` that
returns plain text, strftime_now, a tojson that keeps non-ASCII).

Reads a JSON request from the file named by argv[1]:
  {"now": <unix seconds>, "jobs": [{"template": <path>, "bos_token": ..., "eos_token": ...,
    "cases": [{"messages": [...], "tools": [...] (optional), "context": {...}}]}]}
and prints one JSON object:
  {"results": [[{"ok": true, "prompt": ...} | {"ok": false, "error": ...}, ...], ...],
   "system": [bool, ...], "typed": [bool, ...]}
with add_generation_prompt=True throughout. "system" and "typed" answer, per template,
two questions that decide which cases apply (see template_test.cpp): is a system
message's text rendered at all, and is a user message's text rendered only when it is
given as typed parts ([{"type": "text", "text": ...}])?
"""
import datetime
import json
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlocks(Extension):
    """transformers' {% generation %}...{% endgeneration %}: marks the assistant's
    tokens for training; renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(now).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols, GenerationBlocks])
    env.filters["tojson"] = tojson
    # Plain text: jinja2's Markup would HTML-escape whatever is added to it ("..."|safe +
    # t | tojson), which no chat template means and llama.cpp does not do.
    env.filters["safe"] = str
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(tmpl, job, case):
    kwargs = dict(case.get("context", {}))
    kwargs["messages"] = case["messages"]
    if case.get("tools") is not None:
        kwargs["tools"] = case["tools"]
    kwargs["add_generation_prompt"] = True
    kwargs["bos_token"] = job["bos_token"]
    kwargs["eos_token"] = job["eos_token"]
    return tmpl.render(**kwargs)


def probe(tmpl, job, messages, marker):
    try:
        return marker in render(tmpl, job, {"messages": messages})
    except Exception:  # noqa: BLE001 - a template that raises renders nothing
        return False


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    env = make_env(req["now"])
    out = {"results": [], "system": [], "typed": []}
    for job in req["jobs"]:
        with open(job["template"], encoding="utf-8") as f:
            tmpl = env.from_string(f.read())
        user = "USER_MARKER_7f3a"
        string_ok = probe(tmpl, job, [{"role": "user", "content": user}], user)
        typed_ok = probe(tmpl, job, [{"role": "user",
                                      "content": [{"type": "text", "text": user}]}], user)
        out["typed"].append(typed_ok and not string_ok)
        sys_text = "SYSTEM_MARKER_9c1e"
        out["system"].append(probe(tmpl, job, [{"role": "system", "content": sys_text},
                                                {"role": "user", "content": user}], sys_text))
        results = []
        for case in job["cases"]:
            try:
                results.append({"ok": True, "prompt": render(tmpl, job, case)})
            except Exception as e:  # noqa: BLE001 - reported to the test
                results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
        out["results"].append(results)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
