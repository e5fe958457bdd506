// How a benchmark program runs its main(argv): it exits with main's code, explicitly (a Dawn instance still
// referenced somewhere would otherwise keep Node alive); an error of ours prints one line `<name>: <message>`
// and exits 2 (bad flags) or 1; anything else is a bug and prints its stack.
import { UsageError, WebGpuNnError } from '../src/errors.js';

export function runBenchmark(name: string, main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (e instanceof WebGpuNnError) {
        // Flag errors already begin with the program's name.
        console.error(`${name}: ${e.message.startsWith(`${name}: `) ? e.message.slice(name.length + 2) : e.message}`);
        process.exit(e instanceof UsageError ? 2 : 1);
      }
      console.error(e);
      process.exit(1);
    },
  );
}
