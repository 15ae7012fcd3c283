// What the k6 scripts share: where sluice is and how a consumer calls it.
export const BASE = __ENV.BASE || "http://127.0.0.1:8081";
export const URL = `${BASE}/${__ENV.CONSUMER}/v1/chat/completions`;

export function chat(extra) {
  return {
    headers: Object.assign(
      {
        "Content-Type": "application/json",
        "X-AG-API-Key": __ENV.KEY,
        "X-AG-Gateway-Slug": __ENV.GATEWAY,
      },
      extra || {},
    ),
  };
}
