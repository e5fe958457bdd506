// Prints one line describing the WebGPU adapter Dawn finds, or exits 1 (with Dawn's reason on stderr).
// Used by scripts/setup.sh; plain JavaScript so it runs before anything is built.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('no WebGPU adapter');
  process.exit(1);
}
const info = adapter.info;
console.log(`${info.vendor || 'unknown vendor'} ${info.architecture || ''} (${info.description || 'no description'})`.replace(/\s+/g, ' '));
process.exit(0);
