/** What `--help` prints: the modes, the flags and the settings a first run needs. */
import { WORKER_VERSION } from '../version.js';

export function usage(): string {
  return `runpod-a1111-worker ${WORKER_VERSION}: a RunPod serverless worker for the AUTOMATIC1111 WebUI API (v1.9.3)

Usage:
  runpod-a1111-worker [flags]                 one mode, picked as RunPod's Python runtime picks it:
    --rp_serve_api                            the local RunPod endpoint API (runpod-sdk can drive it)
    --test_input '<json>'                     one job, from the flag or ./test_input.json; exit 0 or 1
                                              (also the mode when RUNPOD_WEBHOOK_GET_JOB is unset)
    (RUNPOD_WEBHOOK_GET_JOB set)              production: RunPod's job loop
  runpod-a1111-worker replay <journal.jsonl>...   replay job journals; exit 1 at the first divergence

Flags:
  --simulator              start the embedded A1111 v1.9.3 SIMULATOR (test-pattern images, no GPU)
                           and point A1111_BASE_URL at it
  --test_input <json>      the job input to run once
  --output-dir <dir>       where --test_input writes the images (default: output)
  --rp_serve_api           serve RunPod's endpoint API locally
  --rp_api_host <host>     its host (default: localhost)
  --rp_api_port <port>     its port (default: 8000)
  --rp_log_level <level>   overrides LOG_LEVEL (DEBUG, INFO, WARN, ERROR)
  --rp_api_concurrency <n>, --rp_debugger
                           accepted as RunPod's runtime accepts them
  --help, -h               this text
  --version                the worker's version

Main settings (environment; all of them in docs/configuration.md):
  A1111_BASE_URL           where the WebUI listens (http://127.0.0.1:3000)
  A1111_LAUNCH_COMMAND     start and supervise the WebUI with this command
  A1111_READY_TIMEOUT_MS   how long to wait for the WebUI (900000)
  JOB_TIMEOUT_MS           a whole job's deadline (0: none)
  WORKER_CONCURRENCY       jobs at once (1)
  WARMUP                   the warm-up generation before the first job: on, off or a JSON file (on)
  BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY, BUCKET_NAME
                           where results too large for RunPod go
  LOG_LEVEL, LOG_FORMAT    the log (info; auto)
  JOURNAL_DIR              keep job journals for replay
`;
}
