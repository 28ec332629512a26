// Vite, webpack, and esbuild with the .wasm copied beside the bundle: no code for the Wasm.
import { run } from './track.js';

run();
