"""Drive sluice with the official OpenAI and Anthropic Python SDKs.

Every client dialect (Chat Completions, Messages, Responses) against every provider
dialect behind sluice (the mock speaks all three; the model name picks one), plain and
streamed, with and without tools, then a second turn that returns a tool result. What is
checked is what the SDKs parse: text, tool calls with complete JSON arguments, finish
reasons, and usage including cached tokens.

Run by tests/sdk.rs, which starts sluice and the mock and passes the addresses in the
environment.
"""

import json
import os
import sys

import anthropic
import openai

BASE = os.environ["SLUICE_PROXY"]
CONSUMER = os.environ["SLUICE_CONSUMER"]
KEY = os.environ["SLUICE_KEY"]
HEADERS = {"X-AG-Gateway-Slug": os.environ["SLUICE_GATEWAY"]}
MODELS = {"chat": "mock-model", "anthropic": "claude-sonnet-4-5", "responses": "gpt-4.1"}
EXPECTED_ARGS = {"city": "value-city"}

oa = openai.OpenAI(base_url=f"{BASE}/{CONSUMER}/v1", api_key=KEY, default_headers=HEADERS, max_retries=0)
an = anthropic.Anthropic(base_url=f"{BASE}/{CONSUMER}", api_key=KEY, default_headers=HEADERS, max_retries=0)

WEATHER = {"name": "get_weather", "description": "Current weather",
           "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

failures = []


def check(case, cond, what):
    if not cond:
        failures.append(f"{case}: {what}")


# --- Chat Completions -------------------------------------------------------------


def chat_tools():
    return [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                              "parameters": WEATHER["schema"]}}]


def chat_once(model, stream, tools, messages):
    """One chat call: (text, [(id, name, args)], finish, usage)."""
    kwargs = {"model": model, "messages": messages}
    if tools:
        kwargs["tools"] = chat_tools()
    if not stream:
        r = oa.chat.completions.create(**kwargs)
        m = r.choices[0].message
        calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in (m.tool_calls or [])]
        return m.content or "", calls, r.choices[0].finish_reason, r.usage
    text, calls, finish, usage = "", {}, None, None
    for chunk in oa.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            text += d.content or ""
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                c["id"] = tc.id or c["id"]
                if tc.function:
                    c["name"] = tc.function.name or c["name"]
                    c["args"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    parsed = [(c["id"], c["name"], json.loads(c["args"])) for _, c in sorted(calls.items())]
    return text, parsed, finish, usage


def chat_case(upstream, stream):
    case = f"chat -> {upstream} stream={stream}"
    model = MODELS[upstream]
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    text, calls, finish, usage = chat_once(model, stream, False, messages)
    check(case, "tok0" in text, f"text {text!r}")
    check(case, finish == "stop", f"finish {finish}")
    check(case, usage and usage.prompt_tokens > 0 and usage.completion_tokens > 0, f"usage {usage}")
    check(case, usage and usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens > 0,
          f"cached {usage}")
    text, calls, finish, usage = chat_once(model, stream, True, messages)
    check(case + " tools", finish == "tool_calls", f"finish {finish}")
    check(case + " tools", len(calls) == 1 and calls[0][1] == "get_weather" and calls[0][2] == EXPECTED_ARGS,
          f"calls {calls}")
    check(case + " tools", usage and usage.completion_tokens > 0, f"usage {usage}")
    if calls:
        call_id = calls[0][0]
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(EXPECTED_ARGS)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
        text, calls, finish, _ = chat_once(model, stream, True, messages)
        check(case + " tool result", "result: sunny" in text and finish == "stop", f"text {text!r} finish {finish}")


# --- Anthropic Messages -----------------------------------------------------------


def messages_once(model, stream, tools, messages):
    kwargs = {"model": model, "max_tokens": 256, "system": "be brief", "messages": messages}
    if tools:
        kwargs["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"],
                            "input_schema": WEATHER["schema"]}]
    if stream:
        with an.messages.stream(**kwargs) as s:
            for _ in s.text_stream:
                pass
            return s.get_final_message()
    return an.messages.create(**kwargs)


def messages_case(upstream, stream):
    case = f"messages -> {upstream} stream={stream}"
    model = MODELS[upstream]
    messages = [{"role": "user", "content": "hello"}]
    m = messages_once(model, stream, False, messages)
    text = "".join(b.text for b in m.content if b.type == "text")
    check(case, "tok0" in text, f"text {text!r}")
    check(case, m.stop_reason == "end_turn", f"stop {m.stop_reason}")
    check(case, m.usage.input_tokens > 0 and m.usage.output_tokens > 0, f"usage {m.usage}")
    check(case, (m.usage.cache_read_input_tokens or 0) > 0, f"cache read {m.usage}")
    m = messages_once(model, stream, True, messages)
    uses = [b for b in m.content if b.type == "tool_use"]
    check(case + " tools", m.stop_reason == "tool_use", f"stop {m.stop_reason}")
    check(case + " tools", len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == EXPECTED_ARGS,
          f"tool_use {uses}")
    if uses:
        messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id, "name": "get_weather",
                                                "input": uses[0].input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]},
        ]
        m = messages_once(model, stream, True, messages)
        text = "".join(b.text for b in m.content if b.type == "text")
        check(case + " tool result", "result: sunny" in text and m.stop_reason == "end_turn",
              f"text {text!r} stop {m.stop_reason}")


# --- OpenAI Responses -------------------------------------------------------------


def responses_once(model, stream, tools, input_):
    kwargs = {"model": model, "instructions": "be brief", "input": input_}
    if tools:
        kwargs["tools"] = [{"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
                            "parameters": WEATHER["schema"], "strict": False}]
    if stream:
        final, deltas, args_deltas = None, "", ""
        for event in oa.responses.create(stream=True, **kwargs):
            if event.type == "response.output_text.delta":
                deltas += event.delta
            elif event.type == "response.function_call_arguments.delta":
                args_deltas += event.delta
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
            elif event.type in ("error", "response.failed"):
                raise RuntimeError(f"stream failed: {event}")
        return final, deltas, args_deltas
    r = oa.responses.create(**kwargs)
    return r, None, None


def responses_case(upstream, stream):
    case = f"responses -> {upstream} stream={stream}"
    model = MODELS[upstream]
    r, deltas, _ = responses_once(model, stream, False, "hello")
    check(case, r is not None and "tok0" in r.output_text, f"text {r and r.output_text!r}")
    check(case, deltas is None or deltas == r.output_text, f"deltas {deltas!r} vs final")
    check(case, r and r.status == "completed", f"status {r and r.status}")
    check(case, r and r.usage.input_tokens > 0 and r.usage.output_tokens > 0, f"usage {r and r.usage}")
    check(case, r and r.usage.input_tokens_details.cached_tokens > 0, f"cached {r and r.usage}")
    r, _, args_deltas = responses_once(model, stream, True, "hello")
    calls = [o for o in (r.output if r else []) if o.type == "function_call"]
    check(case + " tools", len(calls) == 1 and calls[0].name == "get_weather"
          and json.loads(calls[0].arguments) == EXPECTED_ARGS, f"calls {calls}")
    check(case + " tools", args_deltas is None or json.loads(args_deltas or "null") == EXPECTED_ARGS,
          f"argument deltas {args_deltas!r}")
    if calls:
        input_ = [
            {"role": "user", "content": "hello"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
        ]
        r, _, _ = responses_once(model, stream, True, input_)
        check(case + " tool result", r and "result: sunny" in r.output_text, f"text {r and r.output_text!r}")


# --- Errors in each SDK's own types ----------------------------------------------


def error_cases():
    try:
        oa.chat.completions.create(model="not-allowed", messages=[{"role": "user", "content": "x"}])
        check("openai error", False, "no error raised")
    except openai.PermissionDeniedError as e:
        check("openai error", e.status_code == 403 and "not allowed" in str(e), str(e))
    try:
        an.messages.create(model="not-allowed", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        check("anthropic error", False, "no error raised")
    except anthropic.PermissionDeniedError as e:
        check("anthropic error", e.status_code == 403, str(e))
    try:
        an.messages.create(model="mock-model", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                           extra_headers={"x-mock-status": "429"})
        check("anthropic upstream 429", False, "no error raised")
    except anthropic.RateLimitError as e:
        check("anthropic upstream 429", e.status_code == 429, str(e))


def main():
    cases = 0
    for upstream in MODELS:
        for stream in (False, True):
            for run in (chat_case, messages_case, responses_case):
                try:
                    run(upstream, stream)
                except Exception as e:  # noqa: BLE001 - report every failing case
                    failures.append(f"{run.__name__}({upstream}, stream={stream}): {type(e).__name__}: {e}")
                cases += 1
    error_cases()
    print(f"openai {openai.__version__}, anthropic {anthropic.__version__}: {cases} dialect cases")
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
