// k6: scenario 1 (or 2 with MODEL=claude-sonnet-4-5) against a running sluice.
//   k6 run -e BASE=http://127.0.0.1:8081 -e CONSUMER=my-app -e GATEWAY=my-gw -e KEY=ag_… \
//          -e RATE=1000 -e DURATION=30s loadtest/k6/chat.js
// Open model at a fixed arrival rate, so latency includes any queueing (no coordinated
// omission); thresholds are left to the user.
import http from "k6/http";
import { check } from "k6";
import { URL, chat } from "./common.js";

const RATE = parseInt(__ENV.RATE || "1000", 10);

export const options = {
  scenarios: {
    chat: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: __ENV.DURATION || "30s",
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 20)),
      maxVUs: Math.max(50, RATE),
    },
  },
};

const body = JSON.stringify({
  model: __ENV.MODEL || "mock-model",
  messages: [{ role: "user", content: "Say hello in one word." }],
});

const params = chat();

export default function () {
  const res = http.post(URL, body, params);
  check(res, { "status 200": (r) => r.status === 200 });
}
