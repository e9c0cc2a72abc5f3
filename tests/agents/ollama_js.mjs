// The `ollama` npm package (pinned in package.json) against a gateway, the way a Node app
// uses it: one chat answered whole, one streamed. Prints one JSON object on stdout for
// tests/e2e/test_ollama_api.py to check; any client error is printed as {"error", "status"}
// with exit code 1.
//
//   node ollama_js.mjs <gateway url> <bearer token> <model>
import { Ollama } from "ollama";

const [host, token, model] = process.argv.slice(2);
const client = new Ollama({ host, headers: { Authorization: `Bearer ${token}` } });

async function main() {
  const whole = await client.chat({
    model,
    messages: [{ role: "user", content: "hello from node" }],
    stream: false,
  });
  const parts = [];
  const stream = await client.chat({
    model,
    messages: [{ role: "user", content: "stream from node" }],
    think: true,
    stream: true,
  });
  for await (const part of stream) {
    parts.push(part);
  }
  const final = parts[parts.length - 1];
  return {
    chat: whole,
    stream: {
      lines: parts.length,
      content: parts.map((p) => p.message.content).join(""),
      thinking: parts.map((p) => p.message.thinking ?? "").join(""),
      final,
    },
  };
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
  },
  (err) => {
    process.stdout.write(JSON.stringify({ error: String(err?.message ?? err),
                                          status: err?.status_code ?? null }) + "\n");
    process.exitCode = 1;
  },
);
