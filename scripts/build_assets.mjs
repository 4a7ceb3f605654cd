#!/usr/bin/env node
// Builds the vendored front-end assets the Python package serves from static/vendor/.
//
//   npm run build-assets                 -> backend/commerce_context/static/vendor/
//   node scripts/build_assets.mjs OUTDIR -> OUTDIR (tests/test_assets.py rebuilds into a temp dir
//                                           and compares bytes with the committed files)
//
// Every input comes from node_modules, pinned exactly in package.json; the build refuses to run
// when an installed version differs from the pin, and every output name carries the version.
// No CDN: the ZAF SDK is bundled from its CommonJS sources with esbuild into an IIFE that
// defines the global `ZAFClient`, as Zendesk's CDN build (gluejs, export: 'ZAFClient') does.

import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "package.json"));
const outDir = path.resolve(process.argv[2] ?? path.join(root, "backend/commerce_context/static/vendor"));

// Garden CSS packages copied verbatim (dist/index.css): name -> file in the package.
const GARDEN = [
  "@zendeskgarden/css-bedrock", // reset + base typography (Garden's body font, colours, sizes)
  "@zendeskgarden/css-variables", // --zd-* custom properties (colours, spacing, fonts)
  "@zendeskgarden/css-buttons", // .c-btn
  "@zendeskgarden/css-tables", // .c-table
  "@zendeskgarden/css-utilities", // .u-* spacing, colour, typography helpers
];
const ZAF = "zendesk_app_framework_sdk";

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
  return { dir, version: meta.version, license: meta.license ?? meta.licenses?.[0]?.type };
}

async function buildZaf() {
  const esbuild = require("esbuild");
  const { dir, version, license } = await installed(ZAF);
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [path.join(dir, "lib/index.js")],
    bundle: true,
    format: "iife",
    globalName: "ZAFClient",
    platform: "browser",
    target: "es2017",
    charset: "utf8",
    legalComments: "inline",
    banner: {
      js: `/*! ${ZAF} ${version} (npm), bundled by scripts/build_assets.mjs with esbuild ${esbuild.version}. License: ${license}. */`,
    },
    write: false,
    logLevel: "silent",
  });
  return { [`zaf_sdk-${version}.js`]: result.outputFiles[0].contents };
}

async function copyGarden() {
  const files = {};
  for (const name of GARDEN) {
    const { dir, version } = await installed(name);
    files[`${path.basename(name)}-${version}.css`] = await readFile(path.join(dir, "dist/index.css"));
  }
  return files;
}

const outputs = { ...(await buildZaf()), ...(await copyGarden()) };

await mkdir(outDir, { recursive: true });
// Drop outputs of older pins (zaf_sdk-*.js, css-*.css) so the directory holds exactly this build.
for (const entry of await readdir(outDir)) {
  if (/^(zaf_sdk-.*\.js|css-.*\.css)$/.test(entry) && !(entry in outputs)) {
    await rm(path.join(outDir, entry));
  }
}
for (const [file, bytes] of Object.entries(outputs)) {
  await writeFile(path.join(outDir, file), bytes);
  console.log(`${path.relative(process.cwd(), path.join(outDir, file))}\t${bytes.length} bytes`);
}
