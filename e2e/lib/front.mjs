// A front for servers that do not serve the demo themselves (the testkit
// reference server): serves web/ at `/` and forwards `/ws` and `/_sync/*` to
// the backend on the same origin, as the real server binary does on its own.
//
// It also stands in for the real binary's anonymous demo access: the
// reference server speaks the conformance profile, where every request needs a
// token and a browser Origin must be `http://allowed.test`. So the front adds
// the token `demo` to requests that carry none and drops the Origin header
// (same-origin in the browser's eyes, since the front serves the page).
import http from "node:http";
import net from "node:net";
import fs from "node:fs";
import path from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

const DEMO_TOKEN = "demo";

/**
 * Starts the front on `port`, serving `webDir` and forwarding to `backendPort`.
 * @returns {Promise<http.Server>}
 */
export function startFront({ port, backendPort, webDir, host = "127.0.0.1" }) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://front");
    if (url.pathname.startsWith("/_sync/") || url.pathname === "/ws") {
      return forward(req, res, backendPort, host);
    }
    serveStatic(url.pathname, webDir, res);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url, "http://front");
    if (url.pathname !== "/ws") return socket.destroy();
    if (!url.searchParams.has("token")) url.searchParams.set("token", DEMO_TOKEN);
    const upstream = net.connect(backendPort, host);
    const kill = () => {
      socket.destroy();
      upstream.destroy();
    };
    upstream.on("error", kill);
    socket.on("error", kill);
    upstream.on("close", kill);
    socket.on("close", kill);
    upstream.on("connect", () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        if (/^(origin|host)$/i.test(name)) continue;
        lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
      }
      lines.push(`Host: ${host}:${backendPort}`);
      upstream.write(lines.join("\r\n") + "\r\n\r\n");
      if (head && head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
  });
  server.closeAll = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

function forward(req, res, backendPort, host) {
  const headers = { ...req.headers };
  delete headers.origin;
  headers.host = `${host}:${backendPort}`;
  if (!headers.authorization) headers.authorization = `Bearer ${DEMO_TOKEN}`;
  const up = http.request(
    { host, port: backendPort, method: req.method, path: req.url, headers, agent: false },
    (upRes) => {
      res.writeHead(upRes.statusCode || 502, upRes.headers);
      upRes.pipe(res);
    },
  );
  up.on("error", () => {
    if (!res.headersSent) {
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "internal_error", error: "backend unreachable" }));
    } else {
      res.destroy();
    }
  });
  req.pipe(up);
}

function serveStatic(pathname, webDir, res) {
  const rel = pathname === "/" ? "index.html" : decodeURIComponent(pathname).replace(/^\/+/, "");
  const file = path.resolve(webDir, rel);
  if (!file.startsWith(path.resolve(webDir) + path.sep)) {
    res.writeHead(403).end();
    return;
  }
  fs.readFile(file, (err, body) => {
    if (err) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[path.extname(file)] || "application/octet-stream",
      "cache-control": "no-cache",
    });
    res.end(body);
  });
}
