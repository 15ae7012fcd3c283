//! OpenAI Responses, as the mock writes them: a `response` object, or typed SSE events
//! from `response.created` to `response.completed`, each with its `sequence_number`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::ask::{Ask, Finish, OfferedTool, Plan, fragments, tokens_of};

const CREATED: u64 = 1_700_000_000;

pub fn parse(body: &[u8]) -> Option<Ask> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let input = v.get("input")?;
    let (prompt_tokens, tool_result) = match input {
        Value::String(s) => ((s.len() as u64).div_ceil(4) + 1, None),
        Value::Array(items) => (
            items.iter().map(tokens_of).sum::<u64>() + items.len() as u64,
            items
                .last()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
                .map(|i| match i.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                }),
        ),
        _ => return None,
    };
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                .filter_map(|t| {
                    Some(OfferedTool {
                        name: t.get("name")?.as_str()?.to_string(),
                        schema: t.get("parameters").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Ask {
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
            .to_string(),
        stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: true,
        tools,
        tools_forbidden: v.get("tool_choice").and_then(Value::as_str) == Some("none"),
        tool_result,
        prompt_tokens: prompt_tokens + v.get("instructions").map_or(0, tokens_of),
        max_tokens: v.get("max_output_tokens").and_then(Value::as_u64),
    })
}

fn usage(plan: &Plan) -> Value {
    json!({
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "completed" {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    } else {
        json!([])
    };
    json!({"type": "message", "id": format!("msg_{id}"), "status": status, "role": "assistant", "content": content})
}

fn call_item(c: &crate::ask::Call, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_{}", c.id), "call_id": c.id, "name": c.name,
        "arguments": arguments, "status": status})
}

fn output(plan: &Plan, id: &str) -> Vec<Value> {
    let mut items = Vec::new();
    if !plan.pieces.is_empty() {
        items.push(message_item(id, &plan.text(), "completed"));
    }
    items.extend(
        plan.calls
            .iter()
            .map(|c| call_item(c, &c.arguments, "completed")),
    );
    items
}

fn response(plan: &Plan, id: &str, status: &str, with_output: bool) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": id, "object": "response", "created_at": CREATED, "status": status, "error": null,
        "incomplete_details": incomplete, "instructions": null, "model": plan.model,
        "output": if with_output { output(plan, id) } else { Vec::new() },
        "parallel_tool_calls": true, "temperature": 1.0, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "usage": if with_output { usage(plan) } else { Value::Null },
    })
}

fn final_status(plan: &Plan) -> &'static str {
    if plan.finish == Finish::Length {
        "incomplete"
    } else {
        "completed"
    }
}

pub fn complete(plan: &Plan, id: &str) -> Bytes {
    Bytes::from(response(plan, id, final_status(plan), true).to_string())
}

pub fn stream(plan: &Plan, id: &str) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut push = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(events.len());
        events.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    };
    push(
        "response.created",
        json!({"response": response(plan, id, "in_progress", false)}),
    );
    push(
        "response.in_progress",
        json!({"response": response(plan, id, "in_progress", false)}),
    );
    let mut index = 0;
    if !plan.pieces.is_empty() {
        let item_id = format!("msg_{id}");
        push(
            "response.output_item.added",
            json!({"output_index": index, "item": message_item(id, "", "in_progress")}),
        );
        push(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        for p in &plan.pieces {
            push(
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": index,
                "content_index": 0, "delta": p, "logprobs": []}),
            );
        }
        let text = plan.text();
        push(
            "response.output_text.done",
            json!({"item_id": item_id, "output_index": index,
            "content_index": 0, "text": text, "logprobs": []}),
        );
        push(
            "response.content_part.done",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
            "part": {"type": "output_text", "text": text, "annotations": []}}),
        );
        push(
            "response.output_item.done",
            json!({"output_index": index, "item": message_item(id, &text, "completed")}),
        );
        index += 1;
    }
    for c in &plan.calls {
        let item_id = format!("fc_{}", c.id);
        push(
            "response.output_item.added",
            json!({"output_index": index, "item": call_item(c, "", "in_progress")}),
        );
        for f in fragments(&c.arguments) {
            push(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": f}),
            );
        }
        push(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": index,
            "arguments": c.arguments}),
        );
        push(
            "response.output_item.done",
            json!({"output_index": index, "item": call_item(c, &c.arguments, "completed")}),
        );
        index += 1;
    }
    let status = final_status(plan);
    let kind = if status == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    push(kind, json!({"response": response(plan, id, status, true)}));
    events
}
