//! OpenAI Chat Completions and Responses API bodies and streams, rendered as OpenAI's API reference shows
//! them. Writes JSON into buffers; the emitter does the I/O.

use super::content::{self, push_str, Plan};
use super::emit::{EmitError, Emitter};
use super::scenario::Kind;
use super::Ctx;
use std::io::Write;

/// Appends the provider's error JSON for `status`.
pub(crate) fn error_json(out: &mut Vec<u8>, status: u16, message: &str) {
    let (kind, code) = match status {
        400 => ("invalid_request_error", "null"),
        401 => ("invalid_request_error", "\"invalid_api_key\""),
        403 => ("invalid_request_error", "\"unsupported_country_region_territory\""),
        404 => ("invalid_request_error", "\"model_not_found\""),
        429 => ("requests", "\"rate_limit_exceeded\""),
        503 => ("server_error", "\"service_unavailable\""),
        _ => ("server_error", "null"),
    };
    out.extend_from_slice(b"{\"error\":{\"message\":");
    push_str(out, message);
    let _ = write!(out, ",\"type\":\"{kind}\",\"param\":null,\"code\":{code}}}}}");
}

/// Appends the `GET /v1/models` answer in OpenAI's list shape.
pub(crate) fn models_json(out: &mut Vec<u8>) {
    out.extend_from_slice(
        br#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},{"id":"gpt-4.1","object":"model","created":1744316542,"owned_by":"system"}]}"#,
    );
}

// ---------------------------------------------------------------- Chat Completions

fn chat_finish(p: &Plan) -> &'static str {
    if p.tools > 0 {
        "tool_calls"
    } else {
        "stop"
    }
}

fn chat_usage(out: &mut Vec<u8>, p: &Plan) {
    let u = p.usage;
    let _ = write!(
        out,
        "{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{},\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":{},\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}",
        u.openai_input(),
        u.openai_output(),
        u.openai_input() + u.openai_output(),
        u.cache_read,
        u.reasoning
    );
}

fn call_id(out: &mut Vec<u8>, ctx: &Ctx, i: usize) {
    let _ = write!(out, "\"call_mock{:012}_{i}\"", ctx.id);
}

/// Appends the non-streaming `chat.completion` JSON.
pub(crate) fn chat_json(out: &mut Vec<u8>, ctx: &Ctx) {
    let p = &ctx.plan;
    let _ = write!(
        out,
        "{{\"id\":\"chatcmpl-mock{:012}\",\"object\":\"chat.completion\",\"created\":{},\"model\":",
        ctx.id, ctx.created
    );
    push_str(out, ctx.model);
    out.extend_from_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if p.text_deltas > 0 {
        content::push_text(out, p.text_deltas);
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"refusal\":null,\"annotations\":[]");
    if p.tools > 0 {
        out.extend_from_slice(b",\"tool_calls\":[");
        for (i, (name, args)) in content::TOOLS.iter().take(p.tools).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            call_id(out, ctx, i);
            out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            push_str(out, name);
            out.extend_from_slice(b",\"arguments\":");
            push_str(out, args);
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
    }
    let _ = write!(out, "}},\"logprobs\":null,\"finish_reason\":\"{}\"}}],\"usage\":", chat_finish(p));
    chat_usage(out, p);
    out.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\"}");
}

/// Renders one element of a chunk's `choices` array.
type ChoiceRender<'r> = dyn Fn(&mut Vec<u8>) + 'r;

/// Writes one `chat.completion.chunk` with the given choice delta JSON (`None`: the usage-only chunk).
fn chunk(em: &mut Emitter, ctx: &Ctx, choice: Option<&ChoiceRender<'_>>) -> Result<(), EmitError> {
    em.event("", |o| {
        let _ = write!(
            o,
            "{{\"id\":\"chatcmpl-mock{:012}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":",
            ctx.id, ctx.created
        );
        push_str(o, ctx.model);
        o.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
        match choice {
            Some(render) => {
                render(o);
                o.push(b']');
                if ctx.include_usage {
                    o.extend_from_slice(b",\"usage\":null");
                }
            }
            None => {
                o.extend_from_slice(b"],\"usage\":");
                chat_usage(o, &ctx.plan);
            }
        }
        o.push(b'}');
    })
}

/// Streams the completion as `data:` chunks ending with `data: [DONE]`.
pub(crate) fn chat_stream(em: &mut Emitter, ctx: &Ctx) -> Result<(), EmitError> {
    let p = ctx.plan;
    let content_start: &[u8] = if p.text_deltas > 0 { b"\"\"" } else { b"null" };
    chunk(
        em,
        ctx,
        Some(&|o: &mut Vec<u8>| {
            o.extend_from_slice(b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":");
            o.extend_from_slice(content_start);
            o.extend_from_slice(b",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
        }),
    )?;
    for i in 0..p.text_deltas {
        chunk(
            em,
            ctx,
            Some(&|o: &mut Vec<u8>| {
                o.extend_from_slice(b"{\"index\":0,\"delta\":{\"content\":");
                push_str(o, content::word(i));
                o.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}");
            }),
        )?;
    }
    if p.cut {
        if ctx.scenario.kind == Kind::ErrorMidstream {
            em.event("", |o| {
                o.extend_from_slice(br#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#)
            })?;
        }
        return Ok(());
    }
    for (i, (name, args)) in content::TOOLS.iter().take(p.tools).enumerate() {
        chunk(
            em,
            ctx,
            Some(&|o: &mut Vec<u8>| {
                let _ = write!(o, "{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{i},\"id\":");
                call_id(o, ctx, i);
                o.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                push_str(o, name);
                o.extend_from_slice(b",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}");
            }),
        )?;
        for piece in 0..content::ARG_PIECES {
            chunk(
                em,
                ctx,
                Some(&|o: &mut Vec<u8>| {
                    let _ = write!(
                        o,
                        "{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{i},\"function\":{{\"arguments\":"
                    );
                    push_str(o, content::arg_piece(args, piece));
                    o.extend_from_slice(b"}}]},\"logprobs\":null,\"finish_reason\":null}");
                }),
            )?;
        }
    }
    let finish = chat_finish(&p);
    chunk(
        em,
        ctx,
        Some(&|o: &mut Vec<u8>| {
            let _ = write!(o, "{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{finish}\"}}");
        }),
    )?;
    if ctx.include_usage {
        chunk(em, ctx, None)?;
    }
    em.raw_data("[DONE]")
}

// ---------------------------------------------------------------- Responses

/// Which output items a response holds, in order.
#[derive(Clone, Copy)]
enum Item {
    Reasoning,
    Message,
    Call(usize),
}

fn items(p: &Plan) -> impl Iterator<Item = Item> {
    let reasoning = (p.thought_deltas > 0).then_some(Item::Reasoning);
    let message = (p.text_deltas > 0).then_some(Item::Message);
    reasoning.into_iter().chain(message).chain((0..p.tools).map(Item::Call))
}

fn item_id(out: &mut Vec<u8>, ctx: &Ctx, item: Item) {
    let _ = match item {
        Item::Reasoning => write!(out, "\"rs_mock{:012}\"", ctx.id),
        Item::Message => write!(out, "\"msg_mock{:012}\"", ctx.id),
        Item::Call(i) => write!(out, "\"fc_mock{:012}_{i}\"", ctx.id),
    };
}

fn text_part(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(b"{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
    content::push_text(out, n);
    out.push(b'}');
}

/// Appends an output item; `done` selects its final form, otherwise the `output_item.added` form.
fn item_json(out: &mut Vec<u8>, ctx: &Ctx, item: Item, done: bool) {
    let status = if done { "completed" } else { "in_progress" };
    out.extend_from_slice(b"{\"id\":");
    item_id(out, ctx, item);
    match item {
        Item::Reasoning => {
            out.extend_from_slice(b",\"type\":\"reasoning\",\"summary\":[");
            if done {
                out.extend_from_slice(b"{\"type\":\"summary_text\",\"text\":");
                content::push_thoughts(out);
                out.push(b'}');
            }
            out.push(b']');
        }
        Item::Message => {
            let _ = write!(out, ",\"type\":\"message\",\"status\":\"{status}\",\"content\":[");
            if done {
                text_part(out, ctx.plan.text_deltas);
            }
            out.extend_from_slice(b"],\"role\":\"assistant\"");
        }
        Item::Call(i) => {
            let (name, args) = content::TOOLS[i];
            let _ = write!(out, ",\"type\":\"function_call\",\"status\":\"{status}\",\"arguments\":");
            push_str(out, if done { args } else { "" });
            out.extend_from_slice(b",\"call_id\":");
            call_id(out, ctx, i);
            out.extend_from_slice(b",\"name\":");
            push_str(out, name);
        }
    }
    out.push(b'}');
}

/// Appends a response object; `completed` selects the final form with output and usage.
fn response_json(out: &mut Vec<u8>, ctx: &Ctx, completed: bool) {
    let status = if completed { "completed" } else { "in_progress" };
    let _ = write!(
        out,
        "{{\"id\":\"resp_mock{:012}\",\"object\":\"response\",\"created_at\":{},\"status\":\"{status}\",\"background\":false,\"error\":null,\"incomplete_details\":null,\"instructions\":null,\"max_output_tokens\":null,\"model\":",
        ctx.id, ctx.created
    );
    push_str(out, ctx.model);
    out.extend_from_slice(b",\"output\":[");
    if completed {
        for (n, item) in items(&ctx.plan).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            item_json(out, ctx, item, true);
        }
    }
    out.extend_from_slice(b"],\"parallel_tool_calls\":true,\"previous_response_id\":null,\"reasoning\":{\"effort\":null,\"summary\":null},\"store\":true,\"temperature\":1.0,\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":");
    if completed {
        let u = ctx.plan.usage;
        let _ = write!(
            out,
            "{{\"input_tokens\":{},\"input_tokens_details\":{{\"cached_tokens\":{}}},\"output_tokens\":{},\"output_tokens_details\":{{\"reasoning_tokens\":{}}},\"total_tokens\":{}}}",
            u.openai_input(),
            u.cache_read,
            u.openai_output(),
            u.reasoning,
            u.openai_input() + u.openai_output()
        );
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"user\":null,\"metadata\":{}}");
}

/// Appends the non-streaming response object.
pub(crate) fn responses_json(out: &mut Vec<u8>, ctx: &Ctx) {
    response_json(out, ctx, true);
}

/// Numbers the Responses events (`sequence_number`) while writing them.
struct Seq<'e, 'a> {
    em: &'e mut Emitter<'a>,
    n: u64,
}

impl Seq<'_, '_> {
    /// Writes `{"type":name,"sequence_number":n,<fields>}` where `fields` appends `,"k":v...`.
    fn event(&mut self, name: &str, fields: impl FnOnce(&mut Vec<u8>)) -> Result<(), EmitError> {
        let n = self.n;
        self.n += 1;
        self.em.event(name, |o| {
            let _ = write!(o, "{{\"type\":\"{name}\",\"sequence_number\":{n}");
            fields(o);
            o.push(b'}');
        })
    }
}

fn at(o: &mut Vec<u8>, ctx: &Ctx, item: Item, output_index: usize) {
    o.extend_from_slice(b",\"item_id\":");
    item_id(o, ctx, item);
    let _ = write!(o, ",\"output_index\":{output_index}");
}

/// Streams the response as Responses API SSE events (`event:` + `data:` with `sequence_number`s).
pub(crate) fn responses_stream(em: &mut Emitter, ctx: &Ctx) -> Result<(), EmitError> {
    let p = ctx.plan;
    let mut s = Seq { em, n: 0 };
    s.event("response.created", |o| {
        o.extend_from_slice(b",\"response\":");
        response_json(o, ctx, false);
    })?;
    s.event("response.in_progress", |o| {
        o.extend_from_slice(b",\"response\":");
        response_json(o, ctx, false);
    })?;
    for (oi, item) in items(&p).enumerate() {
        s.event("response.output_item.added", |o| {
            let _ = write!(o, ",\"output_index\":{oi},\"item\":");
            item_json(o, ctx, item, false);
        })?;
        match item {
            Item::Reasoning => {
                s.event("response.reasoning_summary_part.added", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
                })?;
                for t in content::THOUGHTS.iter().take(p.thought_deltas) {
                    s.event("response.reasoning_summary_text.delta", |o| {
                        at(o, ctx, item, oi);
                        o.extend_from_slice(b",\"summary_index\":0,\"delta\":");
                        push_str(o, t);
                    })?;
                }
                s.event("response.reasoning_summary_text.done", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"summary_index\":0,\"text\":");
                    content::push_thoughts(o);
                })?;
                s.event("response.reasoning_summary_part.done", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":");
                    content::push_thoughts(o);
                    o.push(b'}');
                })?;
            }
            Item::Message => {
                s.event("response.content_part.added", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"content_index\":0,\"part\":");
                    text_part(o, 0);
                })?;
                for i in 0..p.text_deltas {
                    s.event("response.output_text.delta", |o| {
                        at(o, ctx, item, oi);
                        o.extend_from_slice(b",\"content_index\":0,\"delta\":");
                        push_str(o, content::word(i));
                        o.extend_from_slice(b",\"logprobs\":[]");
                    })?;
                }
                if p.cut {
                    if ctx.scenario.kind == Kind::ErrorMidstream {
                        s.event("error", |o| {
                            o.extend_from_slice(br#","code":"server_error","message":"The server had an error while processing your request.","param":null"#)
                        })?;
                    }
                    return Ok(());
                }
                s.event("response.output_text.done", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"content_index\":0,\"text\":");
                    content::push_text(o, p.text_deltas);
                    o.extend_from_slice(b",\"logprobs\":[]");
                })?;
                s.event("response.content_part.done", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"content_index\":0,\"part\":");
                    text_part(o, p.text_deltas);
                })?;
            }
            Item::Call(i) => {
                let args = content::TOOLS[i].1;
                for piece in 0..content::ARG_PIECES {
                    s.event("response.function_call_arguments.delta", |o| {
                        at(o, ctx, item, oi);
                        o.extend_from_slice(b",\"delta\":");
                        push_str(o, content::arg_piece(args, piece));
                    })?;
                }
                s.event("response.function_call_arguments.done", |o| {
                    at(o, ctx, item, oi);
                    o.extend_from_slice(b",\"arguments\":");
                    push_str(o, args);
                })?;
            }
        }
        s.event("response.output_item.done", |o| {
            let _ = write!(o, ",\"output_index\":{oi},\"item\":");
            item_json(o, ctx, item, true);
        })?;
    }
    s.event("response.completed", |o| {
        o.extend_from_slice(b",\"response\":");
        response_json(o, ctx, true);
    })?;
    Ok(())
}
