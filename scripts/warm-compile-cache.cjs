// Fills Node's module compile cache (NODE_COMPILE_CACHE) for the image: compiles every
// module of dist/ (but main.js, which would start the sidecar) and what they require,
// and writes V8's code cache for them. A sidecar started with NODE_COMPILE_CACHE pointing
// at the read-only result skips most of its JavaScript compilation (opt-in: it starts
// faster but idles higher; npm run bench measures both).
//
//   NODE_COMPILE_CACHE=/app/.compile-cache node warm-compile-cache.cjs /app/dist
'use strict';
const { readdirSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { flushCompileCache, getCompileCacheDir } = require('node:module');

const dist = resolve(process.argv[2] ?? 'dist');
if (!getCompileCacheDir()) {
  console.error('warm-compile-cache: NODE_COMPILE_CACHE is not set (or the directory cannot be used)');
  process.exit(1);
}
const modules = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? modules(join(dir, e.name))
      : e.name.endsWith('.js') && !(dir === dist && e.name === 'main.js')
        ? [join(dir, e.name)]
        : [],
  );
const files = modules(dist);
for (const file of files) require(file);
flushCompileCache();
console.log(`warm-compile-cache: ${files.length} modules of ${dist} and their dependencies compiled into ${getCompileCacheDir()}`);
