#!/usr/bin/env node
// Runs the fauxqs SNS/SQS emulator on 127.0.0.1 only (its own CLI listens on 0.0.0.0).
// Usage: node scripts/servers/fauxqs-server.mjs [PORT]   (default 4566)
// fauxqs is installed in tests/node_modules (tests/package.json); FAUXQS_NODE_MODULES overrides
// that folder. fauxqs is ESM-only and this file lives outside tests/, so the package entry is
// resolved by hand from its package.json. Started and stopped by fauxqs-start.sh / fauxqs-stop.sh.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.FAUXQS_NODE_MODULES ?? resolve(here, '../../tests/node_modules');
const port = Number.parseInt(process.argv[2] ?? '4566', 10);
const host = '127.0.0.1';

function fail(msg) {
  console.error(`fauxqs-server: error: ${msg}`);
  process.exit(1);
}

if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad port: ${process.argv[2]}`);

const pkgDir = join(modules, 'fauxqs');
let pkg;
try {
  pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
} catch (e) {
  fail(`fauxqs not installed in ${modules} (run npm ci in tests/): ${e.message}`);
}
const exp = pkg.exports?.['.'];
const entry = (typeof exp === 'string' ? exp : exp?.import?.default ?? exp?.import ?? exp?.default) ?? pkg.main;
if (typeof entry !== 'string') fail(`cannot find the entry point of fauxqs ${pkg.version}`);

const { buildApp } = await import(pathToFileURL(join(pkgDir, entry)).href);
// FAUXQS_HOST (optional) is the host name fauxqs puts into queue URLs (sqs.REGION.HOST:PORT).
const app = buildApp({ logger: false, ...(process.env.FAUXQS_HOST ? { host: process.env.FAUXQS_HOST } : {}) });

let closing = false;
async function shutdown(signal) {
  if (closing) return;
  closing = true;
  console.log(`fauxqs-server: ${signal}, closing`);
  const t = setTimeout(() => process.exit(0), 2000);
  t.unref();
  try {
    await app.close();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

try {
  const address = await app.listen({ port, host });
  console.log(`fauxqs-server: fauxqs ${pkg.version} listening on ${address} (node ${process.version})`);
} catch (e) {
  fail(`cannot listen on ${host}:${port}: ${e.message}`);
}
