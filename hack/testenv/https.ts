// A tiny HTTPS GET against the apiserver with its own CA (global fetch cannot take a CA without an extra agent).
import { request } from "node:https";

export interface HttpsResult {
  status: number;
  body: string;
}

export function httpsGet(url: string, ca: string, bearer?: string, timeoutMs = 3000): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "GET", ca, headers: bearer ? { Authorization: `Bearer ${bearer}` } : {}, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs}ms`)));
    req.on("error", reject);
    req.end();
  });
}
