// The browser client as a package: its package.json exports resolve for a
// consumer (Node here; bundlers read the same "exports" map), the module
// loads in Node without a browser, and every value the .d.ts declares is
// exported by the module (and nothing undeclared).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(await readFile(join(web, "package.json"), "utf8"));

test("package.json maps import and types to the module and its declarations", async () => {
  assert.equal(pkg.name, "live-sync");
  assert.equal(pkg.type, "module");
  const root = pkg.exports["."];
  assert.equal(root.import, "./live-sync.js");
  assert.equal(root.types, "./live-sync.d.ts");
  assert.equal(Object.keys(root)[0], "types", "TypeScript needs types first");
  for (const file of pkg.files) {
    await readFile(join(web, file)); // published files exist
  }
});

test("a consumer's node_modules resolves the package by name", async () => {
  const app = await mkdtemp(join(tmpdir(), "live-sync-consumer-"));
  try {
    await mkdir(join(app, "node_modules"));
    await symlink(web, join(app, "node_modules", "live-sync"), "dir");
    await writeFile(join(app, "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(
      join(app, "main.js"),
      'import { LiveClient, SyncClient } from "live-sync";\n' +
        "console.log(typeof LiveClient, typeof SyncClient);\n",
    );
    const { stdout } = await promisify(execFile)(process.execPath, [join(app, "main.js")], {
      cwd: app,
    });
    assert.equal(stdout.trim(), "function function");
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test("the module exports exactly the values the declarations name", async () => {
  const mod = await import(pathToFileURL(join(web, "live-sync.js")).href);
  const dts = await readFile(join(web, "live-sync.d.ts"), "utf8");
  const declared = [...dts.matchAll(/^export (?:declare )?(?:const|function|class) (\w+)/gm)]
    .map((m) => m[1])
    .sort();
  assert.ok(declared.length >= 10, `too few declarations found: ${declared}`);
  assert.deepEqual(Object.keys(mod).sort(), declared);
  const self = await import("live-sync");
  assert.equal(self.SyncClient, mod.SyncClient, "self-reference resolves to the same module");
});
