// `webgpu-nn web [--port N]`: serves the training page (src/web/server.ts) and prints its URL; Ctrl-C stops it.
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { startWebServer } from '../web/server.js';

const FLAGS = {
  port: { type: 'int', default: 8080, min: 0, max: 65535, help: 'TCP port on 127.0.0.1 (0: any free port)' },
} as const satisfies FlagsSpec;

const SUMMARY =
  "Serve the training page: the seed's CNN trained in the browser tab with WebGPU, a drawing pad, checkpoints of `webgpu-nn train`.";

export async function webCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, FLAGS, 'web', SUMMARY);
  if (!flags) return 0;
  const server = await startWebServer({ port: flags.port });
  console.log(`the training page: ${server.url}  (open it in a browser with WebGPU; ?autostart&epochs=N starts training at once)`);
  console.log('Ctrl-C stops the server');
  await new Promise<void>((done) => process.once('SIGINT', () => done()));
  await server.close();
  return 0;
}
