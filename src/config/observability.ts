/** What the worker tells its operators: log lines, job journals, the Stately inspector. */
import { integer, oneOf, optionalText, settingGroup } from './declare.js';

export const OBSERVABILITY_SETTINGS = settingGroup('Logs, journals and the inspector', {
  logLevel: oneOf('LOG_LEVEL', ['error', 'warn', 'info', 'debug'] as const, {
    default: 'info',
    fallbacks: ['RUNPOD_LOG_LEVEL', 'RUNPOD_DEBUG_LEVEL'],
    description:
      "Least severe level written; when unset, RUNPOD_LOG_LEVEL or RUNPOD_DEBUG_LEVEL is read. RunPod names are accepted: WARNING means warn, TRACE means debug, NOTSET means error (RunPod's NOTSET prints nothing, but a lost job must always leave an error line), and 0-5 are RunPod's level numbers.",
    aliases: {
      warning: 'warn',
      trace: 'debug',
      notset: 'error',
      '0': 'error',
      '1': 'debug',
      '2': 'debug',
      '3': 'info',
      '4': 'warn',
      '5': 'error',
    },
  }),
  logFormat: oneOf('LOG_FORMAT', ['auto', 'json', 'runpod', 'text'] as const, {
    default: 'auto',
    description:
      'Log line shape. `auto` is `runpod` ({requestId, message, level}) when RUNPOD_ENDPOINT_ID is set, `text` in a terminal, `json` otherwise.',
  }),
  journalDir: optionalText('JOURNAL_DIR', {
    description:
      'Where job journals go (one JSON-lines file per job, replayable with `node dist/src/main.js replay <file>`). Unset: no journals.',
    rule: 'a directory path',
  }),
  journalKeep: oneOf('JOURNAL_KEEP', ['failed', 'all'] as const, {
    default: 'failed',
    description: 'Which jobs keep their journal when JOURNAL_DIR is set: only the failed ones, or all.',
  }),
  inspect: optionalText('STATELY_INSPECT', {
    description:
      'Send every job machine to the Stately inspector: `serve` starts a local bridge on STATELY_INSPECT_PORT (open it in a browser), a ws:// URL connects to a bridge elsewhere. Unset: off. See docs/inspect.md.',
    rule: '`serve` or a ws:// or wss:// URL',
    pattern: /^(serve|wss?:\/\/.+)$/,
  }),
  inspectPort: integer('STATELY_INSPECT_PORT', {
    default: 8080,
    min: 1,
    max: 65_535,
    description: 'Port of the local inspector bridge started by STATELY_INSPECT=serve.',
  }),
});
