-- wrk script: a small OpenAI chat completion, as sluice's scenario 1 sends it.
-- From the environment: CHAT_PATH, CHAT_BODY (JSON), CHAT_HEADERS ("Name: value" lines),
-- or SLUICE_KEY for sluice's key (see compare.sh).
wrk.method = "POST"
wrk.path = os.getenv("CHAT_PATH") or "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
local extra = os.getenv("CHAT_HEADERS")
local key = os.getenv("SLUICE_KEY")
if extra and extra ~= "" then
  for line in extra:gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
elseif key and key ~= "" then
  wrk.headers["X-AG-API-Key"] = key
  wrk.headers["X-AG-Gateway-Slug"] = os.getenv("SLUICE_GATEWAY") or "bench"
else
  wrk.headers["Authorization"] = "Bearer sk-bench"
end
wrk.body = os.getenv("CHAT_BODY")
  or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}]}'
