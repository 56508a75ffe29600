// The route handler served by plain Node, as Next.js would call it: each request becomes a
// web Request, the handler's Response is written back. For trying the receiver (and its test)
// without a Next.js app: PORT=3000 CREDITS_WEBHOOK_SECRET=whsec_... node serve.js
import { createServer } from "node:http";
import { POST } from "./app/api/credits/events/route.js";

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const request = new Request(`http://localhost${req.url}`, {
    method: req.method,
    headers: req.headers,
    body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
  });
  const response = req.method === "POST" ? await POST(request) : new Response(null, { status: 405 });
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
});

server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
