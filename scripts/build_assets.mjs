#!/usr/bin/env node
// Builds the vendored front-end assets the Python package serves from static/vendor/.
//
//   npm run build-assets                 -> backend/commerce_context/static/vendor/
//   node scripts/build_assets.mjs OUTDIR -> OUTDIR (tests/test_assets.py rebuilds into a temp dir
//                                           and compares bytes with the committed files)
//
// Every input comes from node_modules, pinned exactly in package.json; the build refuses to run
// when an installed version differs from the pin, and every output name carries the version.
// The Zendesk Apps Framework SDK is not built here: static/vendor/zaf_sdk-<tag>.js is the
// official SDK built from its own repository at a pinned tag (provenance, sha256 and licence in
// docs/architecture.md and zaf_sdk-<tag>.LICENSE; tests/test_assets.py pins its hash).

import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outDir = path.resolve(process.argv[2] ?? path.join(root, "backend/commerce_context/static/vendor"));

// Garden CSS packages copied verbatim (dist/index.css): name -> file in the package.
const GARDEN = [
  "@zendeskgarden/css-bedrock", // reset + base typography (Garden's body font, colours, sizes)
  "@zendeskgarden/css-variables", // --zd-* custom properties (colours, spacing, fonts)
  "@zendeskgarden/css-buttons", // .c-btn
  "@zendeskgarden/css-tables", // .c-table
  "@zendeskgarden/css-utilities", // .u-* spacing, colour, typography helpers
];

const pins = JSON.parse(await readFile(path.join(root, "package.json"), "utf8"));
const pinned = { ...pins.dependencies, ...pins.devDependencies };

async function installed(name) {
  const pin = pinned[name];
  if (!pin) throw new Error(`${name} is not in package.json`);
  if (!/^\d+\.\d+\.\d+$/.test(pin)) throw new Error(`${name} must be pinned exactly, got "${pin}"`);
  const dir = path.join(root, "node_modules", name);
  let meta;
  try {
    meta = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  } catch {
    throw new Error(`${name} is not installed: run \`npm ci\``);
  }
  if (meta.version !== pin) {
    throw new Error(`${name}: installed ${meta.version}, package.json pins ${pin}: run \`npm ci\``);
  }
  return { dir, version: meta.version };
}

async function copyGarden() {
  const files = {};
  for (const name of GARDEN) {
    const { dir, version } = await installed(name);
    files[`${path.basename(name)}-${version}.css`] = await readFile(path.join(dir, "dist/index.css"));
  }
  return files;
}

const outputs = await copyGarden();

await mkdir(outDir, { recursive: true });
// Drop outputs of older pins (css-*.css) so the directory holds exactly this build; the
// vendored ZAF SDK (zaf_sdk-*) is not ours to touch.
for (const entry of await readdir(outDir)) {
  if (/^css-.*\.css$/.test(entry) && !(entry in outputs)) {
    await rm(path.join(outDir, entry));
  }
}
for (const [file, bytes] of Object.entries(outputs)) {
  await writeFile(path.join(outDir, file), bytes);
  console.log(`${path.relative(process.cwd(), path.join(outDir, file))}\t${bytes.length} bytes`);
}
