-- wrk script: a small OpenAI chat completion, as sluice's scenario 1 sends it.
-- The target's path and headers come from the environment (see compare.sh).
wrk.method = "POST"
wrk.path = os.getenv("CHAT_PATH") or "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("SLUICE_KEY")
if key and key ~= "" then
  wrk.headers["X-AG-API-Key"] = key
  wrk.headers["X-AG-Gateway-Slug"] = os.getenv("SLUICE_GATEWAY") or "bench"
else
  wrk.headers["Authorization"] = "Bearer sk-bench"
end
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}]}'
