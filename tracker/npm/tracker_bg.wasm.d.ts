/**
 * The tracker's Wasm, for bundlers that need it imported to emit it (esbuild with
 * `--loader:.wasm=file`): the import is its URL, to pass to `load()` as `wasmUrl`.
 */
declare const wasmUrl: string;
export default wasmUrl;
