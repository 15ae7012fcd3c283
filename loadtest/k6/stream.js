// k6: scenario 3, streamed answers (50 chunks from the mock), translated when MODEL
// names an Anthropic-routed model. `http_req_waiting` is the time to first byte.
//   k6 run -e BASE=http://127.0.0.1:8081 -e CONSUMER=my-app -e GATEWAY=my-gw -e KEY=ag_… \
//          -e MODEL=claude-sonnet-4-5 -e VUS=32 -e DURATION=30s loadtest/k6/stream.js
import http from "k6/http";
import { check } from "k6";
import { URL, chat } from "./common.js";

export const options = {
  vus: parseInt(__ENV.VUS || "32", 10),
  duration: __ENV.DURATION || "30s",
};

const body = JSON.stringify({
  model: __ENV.MODEL || "claude-sonnet-4-5",
  stream: true,
  messages: [{ role: "user", content: "Say hello in one word." }],
});

const params = chat({ "x-mock-chunks": __ENV.CHUNKS || "50" });

export default function () {
  const res = http.post(URL, body, params);
  check(res, {
    "status 200": (r) => r.status === 200,
    "stream ended": (r) => r.body.includes("data: [DONE]"),
  });
}
