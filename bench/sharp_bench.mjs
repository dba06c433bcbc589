// sharp_bench.mjs: the benchmark's task with sharp (Node.js, libvips prebuilt by sharp's npm
// packages), one Node process, N images in flight at once.
//
// usage: node sharp_bench.mjs [--mode clone|raw] [-j N] -o OUTDIR FILE...
//        writes OUTDIR/<size>/<name>.jpg, prints one line per image
//
// --mode clone (default): the pattern from sharp's documentation for several outputs of one
//   input: read the file once into a Buffer, `const img = sharp(buf)`, then per size
//   `img.clone().rotate().resize(...).jpeg({quality: 80}).toFile(...)`. Note: a clone shares the
//   input buffer, not decoded pixels: libvips decodes again for each size, each with its own
//   shrink-on-load.
// --mode raw: one decode per image: decode once, shrunk on load to what the largest size needs,
//   into a raw pixel buffer (`.raw().toBuffer()`), then every size is resized from that buffer.
//
// The sizes of one image are made one after another; N (-j) images are in flight, so at most N
// pipelines run at once. sharp's own settings are left at their defaults: on glibc Linux without
// jemalloc sharp sets libvips' concurrency to 1 thread per pipeline, and its operation cache on.
// JPEG: quality 80, sharp's defaults otherwise (optimise_coding on, 4:2:0, metadata stripped).
import { readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

const SIZES = [
  { name: 'thumbnail', w: 150, h: 150, cover: true },
  { name: 'medium', w: 640, h: 640, cover: false },
  { name: 'large', w: 1280, h: 1280, cover: false },
];
const QUALITY = 80;

function resizeOptions(s) {
  return s.cover
    ? { width: s.w, height: s.h, fit: 'cover', position: 'centre', withoutEnlargement: true }
    : { width: s.w, height: s.h, fit: 'inside', withoutEnlargement: true };
}

async function cloneMode(file, outdir, name) {
  const buf = await readFile(file);
  const img = sharp(buf);
  for (const s of SIZES) {
    await img.clone().rotate().resize(resizeOptions(s)).jpeg({ quality: QUALITY })
      .toFile(path.join(outdir, s.name, `${name}.jpg`));
  }
}

async function rawMode(file, outdir, name) {
  const buf = await readFile(file);
  const meta = await sharp(buf).metadata(); // header only
  let { width: w, height: h } = meta;
  if ((meta.orientation ?? 1) >= 5) [w, h] = [h, w];
  // the scale the largest need asks for (fit: min of the ratios, cover: max), at most 1
  let need = 0;
  for (const s of SIZES) {
    const sx = s.w / w, sy = s.h / h;
    need = Math.max(need, Math.min(1, s.cover ? Math.max(sx, sy) : Math.min(sx, sy)));
  }
  const dw = Math.max(1, Math.round(w * need)), dh = Math.max(1, Math.round(h * need));
  const { data, info } = await sharp(buf).rotate()
    .resize({ width: dw, height: dh, fit: 'fill' })
    .raw().toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  for (const s of SIZES) {
    await sharp(data, raw).resize(resizeOptions(s)).jpeg({ quality: QUALITY })
      .toFile(path.join(outdir, s.name, `${name}.jpg`));
  }
}

async function main() {
  const argv = process.argv.slice(2);
  let mode = 'clone', jobs = 1, outdir = null;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--mode') mode = argv[++i];
    else if (argv[i] === '-j') jobs = Number(argv[++i]);
    else if (argv[i] === '-o') outdir = argv[++i];
    else files.push(argv[i]);
  }
  if (!outdir || !files.length || !['clone', 'raw'].includes(mode) || !(jobs >= 1)) {
    console.error('usage: node sharp_bench.mjs [--mode clone|raw] [-j N] -o OUTDIR FILE...');
    process.exit(2);
  }
  for (const s of SIZES) await mkdir(path.join(outdir, s.name), { recursive: true });
  const work = mode === 'raw' ? rawMode : cloneMode;
  let next = 0, failed = 0;
  async function worker() {
    while (next < files.length) {
      const file = files[next++];
      const name = path.basename(file, path.extname(file));
      try {
        await work(file, outdir, name);
        console.log(file);
      } catch (e) {
        failed++;
        console.error(`sharp_bench: ${file}: ${e.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: jobs }, worker));
  process.exit(failed ? 1 : 0);
}

main();
