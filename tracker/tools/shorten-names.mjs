// Shortens the names the Wasm and its wasm-bindgen glue use for each other. wasm-bindgen
// names every import `__wbg_<name>_<16 hex digits>` from module "./tracker_bg.js" or
// "./snippets/…", and some exports run to 100 characters: random hex that no compressor
// shrinks, paid twice (in the Wasm and in the glue). wasm-opt's
// --minify-imports-and-exports-and-modules renames them all (one module "a", names of one
// or two letters) and prints the mapping, which this script applies to the glue.
//
//   node shorten-names.mjs MAPPING.json GLUE.js
//
// It fails, leaving the build broken rather than wrong, if any name in the mapping is not
// found where expected in the glue or any `wasm.<export>` in the glue is not in it.
// It also leaves out initSync, which the tracker does not use, and trims how the Wasm is
// loaded (see below).
import { readFileSync, writeFileSync } from 'node:fs';

const [mappingFile, glueFile] = process.argv.slice(2);
const mapping = JSON.parse(readFileSync(mappingFile, 'utf8'));
let glue = readFileSync(glueFile, 'utf8');
const fail = (message) => { console.error(`shorten-names: ${message}`); process.exit(1); };
const escape = (s) => s.replace(/[$]/g, '\\$&');

// Exports: every `wasm.NAME` becomes `wasm.SHORT`.
const exports = new Map(mapping.exports);
glue = glue.replace(/\bwasm\.([A-Za-z0-9_$]+)/g, (_, name) => {
  if (!exports.has(name)) fail(`export ${name} is not in the mapping`);
  return `wasm.${exports.get(name)}`;
});

// Imports from the glue's own object (`NAME: function`): rename the key in place. Imports
// from a snippet: the glue passes the snippet's module namespace (`importN`), so the new
// object refers to each function of it by name.
const namespaces = new Map();
for (const [, variable, path] of glue.matchAll(/^import \* as (import\d+) from "([^"]+)"/gm)) {
  if (!namespaces.has(path)) namespaces.set(path, variable);
}
const fromSnippets = [];
for (const [module, name, short] of mapping.imports) {
  if (module === './tracker_bg.js') {
    const key = new RegExp(`^(\\s+)${escape(name)}:`, 'm');
    if (!key.test(glue)) fail(`import ${name} not found in the glue`);
    glue = glue.replace(key, `$1${JSON.stringify(short)}:`);
  } else {
    const variable = namespaces.get(module);
    if (!variable) fail(`no namespace import of ${module}`);
    fromSnippets.push(`${JSON.stringify(short)}: ${variable}.${name}`);
  }
}
const returned = /return \{\s*__proto__: null,\s*"\.\/tracker_bg\.js": import0,[^}]*\};/;
if (!returned.test(glue)) fail('the imports object returned by __wbg_get_imports not found');
glue = glue.replace(returned, `return { a: Object.assign(import0, { ${fromSnippets.join(', ')} }) };`);
// Nothing of ours calls initSync (the loader and the npm package fetch the Wasm), and no
// exported function can be dropped by the minifier: the page need not download it.
const exported = 'export { initSync, __wbg_init as default };';
if (!glue.includes(exported)) fail('the glue\'s export line not found');
glue = glue.replace(exported, 'export { __wbg_init as default };');

// Loading the Wasm: the tracker's callers pass a URL (or bytes, or a module). Compiled from
// its bytes, it needs no `application/wasm` type from the site's server, so the glue's
// streaming path, its fallback and their warnings go; as does the warning for the old
// calling convention, which nothing of ours uses. A 23 KB module compiles as fast either way.
const load = /async function __wbg_load\(module, imports\) \{[\s\S]*?\n\}\n/;
if (!load.test(glue)) fail('__wbg_load not found in the glue');
glue = glue.replace(load, `async function __wbg_load(module, imports) {
    if (module instanceof Response) {
        if (!module.ok) throw new Error(\`failed to fetch Wasm: \${module.status} \${module.url}\`);
        module = await module.arrayBuffer();
    }
    const instance = await WebAssembly.instantiate(module, imports);
    return instance instanceof WebAssembly.Instance ? { instance, module } : instance;
}
`);
const options = /if \(module_or_path !== undefined\) \{\s*if \(Object\.getPrototypeOf\(module_or_path\) === Object\.prototype\) \{\s*\(\{module_or_path\} = module_or_path\)\s*\} else \{\s*console\.warn\([^)]*\)\s*\}\s*\}/;
if (!options.test(glue)) fail('the options check of __wbg_init not found in the glue');
glue = glue.replace(options, 'if (module_or_path && Object.getPrototypeOf(module_or_path) === Object.prototype) ({module_or_path} = module_or_path);');
// Text from the Wasm: wasm-bindgen replaces its decoder after every 2 GB decoded, for a
// Safari bug; the tracker decodes a few short strings per event.
const decoder = /let cachedTextDecoder = [^;]*;\s*cachedTextDecoder\.decode\(\);\s*const MAX_SAFARI_DECODE_BYTES = \d+;\s*let numBytesDecoded = 0;\s*function decodeText\(ptr, len\) \{[\s\S]*?\n\}\n/;
if (!decoder.test(glue)) fail('decodeText not found in the glue');
glue = glue.replace(decoder, `const cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });
function decodeText(ptr, len) {
    return cachedTextDecoder.decode(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}
`);
// The tracker and its one callback live as long as the page: nothing for a
// FinalizationRegistry to free.
const registries = /const (TrackerFinalization|CLOSURE_DTORS) = \(typeof FinalizationRegistry === 'undefined'\)\s*\? \{ register: \(\) => \{\}, unregister: \(\) => \{\} \}\s*: new FinalizationRegistry\([^;]*\);/g;
if ((glue.match(registries) || []).length !== 2) fail('the two FinalizationRegistry objects not found in the glue');
glue = glue.replace(registries, 'const $1 = { register() {}, unregister() {} };');
// Strings into the Wasm (a URL, a stored key): encoded whole. The glue's in-place path
// (an ASCII loop, then encodeInto and reallocation) and the encodeInto polyfill it needs
// in old browsers buy nothing for strings this short.
const pass = /function passStringToWasm0\(arg, malloc, realloc\) \{[\s\S]*?\n\}\n/;
const polyfill = /\nif \(!\('encodeInto' in cachedTextEncoder\)\) \{[\s\S]*?\n\}\n/;
if (!pass.test(glue) || !polyfill.test(glue)) fail('passStringToWasm0 or the encodeInto polyfill not found in the glue');
glue = glue.replace(pass, `function passStringToWasm0(arg, malloc) {
    const buf = cachedTextEncoder.encode(arg);
    const ptr = malloc(buf.length, 1) >>> 0;
    getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
    WASM_VECTOR_LEN = buf.length;
    return ptr;
}
`).replace(polyfill, '\n');
writeFileSync(glueFile, glue);
