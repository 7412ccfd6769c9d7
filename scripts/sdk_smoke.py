# Drives the official OpenAI and Anthropic Python SDKs through a running aibridged (issue 2 "done when"):
# streamed chat completion, Responses stream, Anthropic message stream, and a 401 surfacing as the SDK's
# AuthenticationError. Usage: python3 scripts/sdk_smoke.py http://HOST:PORT <gateway token>
# (pip install openai anthropic; point the gateway's openai/anthropic instances at a mock or real upstream).
import os, sys, openai, anthropic
base = sys.argv[1]; token = sys.argv[2]
oc = openai.OpenAI(base_url=f"{base}/api/v2/aibridge/openai/v1", api_key=token)
text = "".join((c.choices[0].delta.content or "") for c in oc.chat.completions.create(model="gpt-4o", messages=[{"role":"user","content":"hi"}], stream=True) if c.choices)
print("openai stream:", repr(text))
r = oc.responses.create(model="gpt-5", input="hi", stream=True)
print("openai responses events:", [e.type for e in r][-1])
ac = anthropic.Anthropic(base_url=f"{base}/api/v2/aibridge/anthropic", api_key=token)
with ac.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role":"user","content":"hi"}]) as s:
    msg = s.get_final_message()
print("anthropic stream:", msg.content[0].text, msg.usage.input_tokens, msg.usage.output_tokens)
try:
    openai.OpenAI(base_url=f"{base}/api/v2/aibridge/openai/v1", api_key="bad").chat.completions.create(model="gpt-4o", messages=[{"role":"user","content":"hi"}])
except openai.AuthenticationError as e:
    print("openai 401 surfaced as AuthenticationError:", e.status_code)
