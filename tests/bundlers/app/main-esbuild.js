// esbuild does not follow `new URL('./tracker_bg.wasm', import.meta.url)`: importing the file
// under `--loader:.wasm=file` is what makes it emit the .wasm and hand over its URL.
import wasmUrl from '@edge-cdp/tracker/tracker_bg.wasm';
import { run } from './track.js';

run({ wasmUrl });
