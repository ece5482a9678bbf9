/** The command line: RunPod's Python runtime's flags, the worker's own, and the ones it does not know. */
import { parseArgs } from 'node:util';

const KNOWN = new Set([
  'test_input',
  'rp_serve_api',
  'rp_api_host',
  'rp_api_port',
  'rp_log_level',
  'rp_api_concurrency',
  'rp_debugger',
  'simulator',
  'output-dir',
  'help',
  'version',
]);

export function parseFlags(argv: string[] = process.argv.slice(2)) {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: false,
    allowPositionals: true,
    options: {
      test_input: { type: 'string' },
      rp_serve_api: { type: 'boolean' },
      rp_api_host: { type: 'string' },
      rp_api_port: { type: 'string' },
      rp_log_level: { type: 'string' },
      // Accepted as RunPod's Python runtime accepts them; the local API is one process either way.
      rp_api_concurrency: { type: 'string' },
      rp_debugger: { type: 'boolean' },
      simulator: { type: 'boolean' },
      'output-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  const text = (key: string) => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  return {
    testInput: text('test_input'),
    serveApi: values['rp_serve_api'] === true,
    apiHost: text('rp_api_host') ?? 'localhost',
    apiPort: text('rp_api_port') ?? '8000',
    logLevel: text('rp_log_level'),
    simulator: values['simulator'] === true,
    outputDir: text('output-dir') ?? 'output',
    command: positionals[0] === 'replay' ? 'replay' : undefined,
    files: positionals.slice(1),
    // Words that are no flag and no command (`node main.js foo`): warned about, not refused.
    ignored: positionals[0] === 'replay' ? [] : positionals,
    help: values['help'] === true,
    version: values['version'] === true,
    /** Flags no mode takes, as written (`--tets_input`): the worker refuses to start on them. */
    unknown: Object.keys(values)
      .filter((key) => !KNOWN.has(key))
      .map((key) => (key.length === 1 ? `-${key}` : `--${key}`)),
  };
}
