//! Anthropic Messages API bodies and streams (also carried by the Bedrock endpoints), rendered as the
//! Anthropic docs show them ("Streaming Messages"). Writes JSON into buffers; the emitter does the I/O.

use super::content::{self, push_num, push_str, Plan};
use super::emit::{EmitError, Emitter};
use super::scenario::Kind;
use super::Ctx;
use std::io::Write;

fn block_count(p: &Plan) -> usize {
    usize::from(p.thought_deltas > 0) + usize::from(p.text_deltas > 0) + p.tools
}

fn stop_reason(p: &Plan) -> &'static str {
    if p.tools > 0 {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn push_usage(out: &mut Vec<u8>, ctx: &Ctx, output: u32) {
    let u = ctx.plan.usage;
    let _ = write!(
        out,
        "{{\"input_tokens\":{},\"cache_creation_input_tokens\":{},\"cache_read_input_tokens\":{},\"output_tokens\":{}}}",
        u.input, u.cache_write, u.cache_read, output
    );
}

fn push_tool_id(out: &mut Vec<u8>, ctx: &Ctx, i: usize) {
    let _ = write!(out, "\"toolu_mock{:012}_{i}\"", ctx.id);
}

/// Appends the non-streaming message JSON.
pub(crate) fn message_json(out: &mut Vec<u8>, ctx: &Ctx) {
    let p = &ctx.plan;
    let _ = write!(out, "{{\"id\":\"msg_mock{:012}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", ctx.id);
    push_str(out, ctx.model);
    out.extend_from_slice(b",\"content\":[");
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::replace(&mut first, false) {
            out.push(b',');
        }
    };
    if p.thought_deltas > 0 {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
        content::push_thoughts(out);
        out.extend_from_slice(b",\"signature\":");
        push_str(out, content::SIGNATURE);
        out.push(b'}');
    }
    if p.text_deltas > 0 {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        content::push_text(out, p.text_deltas);
        out.push(b'}');
    }
    for (i, (name, args)) in content::TOOLS.iter().take(p.tools).enumerate() {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        push_tool_id(out, ctx, i);
        out.extend_from_slice(b",\"name\":");
        push_str(out, name);
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(args.as_bytes());
        out.push(b'}');
    }
    let _ = write!(out, "],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":", stop_reason(p));
    push_usage(out, ctx, p.usage.output);
    out.push(b'}');
}

/// Appends the `count_tokens` answer.
pub(crate) fn count_tokens_json(out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"input_tokens":12}"#);
}

/// Appends the `GET /v1/models` answer in Anthropic's list shape.
pub(crate) fn models_json(out: &mut Vec<u8>) {
    out.extend_from_slice(
        br#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5-20251001","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-haiku-4-5-20251001"}"#,
    );
}

/// Appends the provider's error JSON for `status`.
pub(crate) fn error_json(out: &mut Vec<u8>, status: u16, message: &str) {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let _ = write!(out, "{{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":");
    push_str(out, message);
    out.extend_from_slice(b"}}");
}

fn block_start(em: &mut Emitter, index: usize, body: impl FnOnce(&mut Vec<u8>)) -> Result<(), EmitError> {
    em.event("content_block_start", |o| {
        let _ = write!(o, "{{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":");
        body(o);
        o.push(b'}');
    })
}

fn delta(em: &mut Emitter, index: usize, kind: &str, field: &str, value: &str) -> Result<(), EmitError> {
    em.event("content_block_delta", |o| {
        let _ = write!(
            o,
            "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{kind}\",\"{field}\":"
        );
        push_str(o, value);
        o.extend_from_slice(b"}}");
    })
}

fn block_stop(em: &mut Emitter, index: usize) -> Result<(), EmitError> {
    em.event("content_block_stop", |o| {
        let _ = write!(o, "{{\"type\":\"content_block_stop\",\"index\":{index}}}");
    })
}

/// Streams the message as Anthropic SSE events (or Bedrock chunks when `ctx.bedrock`).
pub(crate) fn stream(em: &mut Emitter, ctx: &Ctx) -> Result<(), EmitError> {
    let p = ctx.plan;
    em.event("message_start", |o| {
        let _ = write!(o, "{{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_mock{:012}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", ctx.id);
        push_str(o, ctx.model);
        o.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        push_usage(o, ctx, 1);
        o.extend_from_slice(b"}}");
    })?;
    em.event("ping", |o| o.extend_from_slice(br#"{"type":"ping"}"#))?;
    let mut index = 0;
    if p.thought_deltas > 0 {
        block_start(em, index, |o| o.extend_from_slice(br#"{"type":"thinking","thinking":"","signature":""}"#))?;
        for t in content::THOUGHTS.iter().take(p.thought_deltas) {
            delta(em, index, "thinking_delta", "thinking", t)?;
        }
        delta(em, index, "signature_delta", "signature", content::SIGNATURE)?;
        block_stop(em, index)?;
        index += 1;
    }
    if p.text_deltas > 0 {
        block_start(em, index, |o| o.extend_from_slice(br#"{"type":"text","text":""}"#))?;
        for i in 0..p.text_deltas {
            delta(em, index, "text_delta", "text", content::word(i))?;
        }
        if p.cut {
            if ctx.scenario.kind == Kind::ErrorMidstream {
                if ctx.bedrock {
                    em.exception(ctx.scenario.exception, "Mock mid-stream failure")?;
                } else {
                    em.event("error", |o| {
                        o.extend_from_slice(
                            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                        )
                    })?;
                }
            }
            return Ok(());
        }
        block_stop(em, index)?;
        index += 1;
    }
    for (i, (name, args)) in content::TOOLS.iter().take(p.tools).enumerate() {
        block_start(em, index, |o| {
            o.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
            push_tool_id(o, ctx, i);
            o.extend_from_slice(b",\"name\":");
            push_str(o, name);
            o.extend_from_slice(b",\"input\":{}}");
        })?;
        delta(em, index, "input_json_delta", "partial_json", "")?;
        for piece in 0..content::ARG_PIECES {
            delta(em, index, "input_json_delta", "partial_json", content::arg_piece(args, piece))?;
        }
        block_stop(em, index)?;
        index += 1;
    }
    debug_assert_eq!(index, block_count(&p));
    em.event("message_delta", |o| {
        let _ = write!(
            o,
            "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":",
            stop_reason(&p)
        );
        push_num(o, p.usage.output);
        o.extend_from_slice(b"}}");
    })?;
    em.event("message_stop", |o| {
        if ctx.bedrock {
            // Bedrock appends its invocation metrics to the final event.
            let _ = write!(
                o,
                "{{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{{\"inputTokenCount\":{},\"outputTokenCount\":{},\"invocationLatency\":12,\"firstByteLatency\":3}}}}",
                p.usage.input, p.usage.output
            );
        } else {
            o.extend_from_slice(br#"{"type":"message_stop"}"#);
        }
    })
}
