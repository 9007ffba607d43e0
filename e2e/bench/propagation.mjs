// How long a todo added in one page takes to show in another page (push,
// commit, poke, pull, render), measured inside the browsers with one clock.
//
//   node e2e/bench/propagation.mjs [count]     (server chosen as in the tests)
//
// Prints the median, p90 and max over `count` adds made one after another.
import { startServer } from "../lib/server.mjs";
import { launchBrowser, openTodo } from "../lib/browser.mjs";

const count = Number(process.argv[2] || 50);
const server = await startServer();
const browser = await launchBrowser();
try {
  const a = await openTodo(await browser.newContext(), server.baseUrl);
  const b = await openTodo(await browser.newContext(), server.baseUrl);
  await b.evaluate(() => {
    window.arrivals = {};
    window.todoApp.sync.on("change", (state) => {
      const now = performance.timeOrigin + performance.now();
      for (const [k, v] of Object.entries(state)) {
        if (k.startsWith("bench/") && !(k in window.arrivals)) window.arrivals[k] = { at: now, sent: v };
      }
    });
  });
  const latencies = [];
  for (let i = 0; i < count; i++) {
    const key = `bench/${i}`;
    await a.evaluate((key) => window.todoApp.sync.mutate("put", { key, value: performance.timeOrigin + performance.now() }), key);
    await b.waitForFunction((key) => key in window.arrivals, key, { timeout: 5000 });
    const { at, sent } = await b.evaluate((key) => window.arrivals[key], key);
    latencies.push(at - sent);
  }
  latencies.sort((x, y) => x - y);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(
    `propagation over ${count} adds (${server.kind} server): median ${q(0.5).toFixed(1)} ms, ` +
      `p90 ${q(0.9).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms`,
  );
} finally {
  await browser.close();
  await server.stop();
}
