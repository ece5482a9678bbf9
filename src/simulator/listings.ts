/**
 * The read routes of a stock v1.9.3 with the ControlNet, ADetailer and ReActor extensions installed, in
 * the shapes api.py gives them: what a fresh install lists (no hypernetworks or styles; the LoRAs, VAEs
 * and embeddings are networks.ts's), the built-in face restorers and R-ESRGAN models, the scripts, the
 * memory report.
 */
import { REALESRGAN_MODELS, SCRIPTS, scriptInfo } from './catalog.js';

type Handler = (req: unknown, body: unknown, url: URL) => unknown;

const API = '/sdapi/v1';

/** The extensions of the simulated install. */
const EXTENSIONS: [string, string, string][] = [
  ['adetailer', 'https://github.com/Bing-su/adetailer.git', 'a7d961131e879ea8a930034a21a2dee21b173e8c'],
  [
    'sd-webui-controlnet',
    'https://github.com/Mikubill/sd-webui-controlnet.git',
    '56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81',
  ],
  ['sd-webui-reactor', 'https://github.com/Gourieff/sd-webui-reactor.git', '9ad7c7ffa00f6a4b3a0c7f4e4e3bd9a2da27b3c8'],
];

function memory(): Record<string, unknown> {
  const usage = process.memoryUsage();
  const total = 24 * 1024 ** 3;
  return {
    ram: { free: total - usage.rss, used: usage.rss, total },
    cuda: {
      system: { free: 20 * 1024 ** 3, used: 4 * 1024 ** 3, total: 24 * 1024 ** 3 },
      active: { current: 2.2e9, peak: 3.1e9 },
      allocated: { current: 2.2e9, peak: 3.1e9 },
      reserved: { current: 2.6e9, peak: 3.4e9 },
      inactive: { current: 0.4e9, peak: 0.9e9 },
      events: { retries: 0, oom: 0 },
    },
  };
}

export function listings(installed: {
  controlnet: boolean;
  controlNetModels: (update: boolean) => Promise<string[]>;
}): Record<string, { GET: Handler }> {
  const routes: Record<string, { GET: Handler }> = {
    [`${API}/hypernetworks`]: { GET: () => [] },
    [`${API}/face-restorers`]: {
      GET: () => [
        { name: 'CodeFormer', cmd_dir: null },
        { name: 'GFPGAN', cmd_dir: null },
      ],
    },
    [`${API}/realesrgan-models`]: { GET: () => REALESRGAN_MODELS },
    [`${API}/prompt-styles`]: { GET: () => [] },
    [`${API}/scripts`]: {
      GET: () => {
        // Without the ControlNet extension, its script is not there either.
        const present = (name: string) => installed.controlnet || name !== 'controlnet';
        return { txt2img: SCRIPTS.txt2img.listed.filter(present), img2img: SCRIPTS.img2img.listed.filter(present) };
      },
    },
    [`${API}/script-info`]: { GET: () => scriptInfo() },
    [`${API}/extensions`]: {
      GET: () =>
        EXTENSIONS.map(([name, remote, commit]) => ({
          name,
          remote,
          branch: 'main',
          commit_hash: commit,
          version: commit.slice(0, 8),
          commit_date: '1714000000',
          enabled: true,
        })),
    },
    [`${API}/memory`]: { GET: memory },
  };
  if (installed.controlnet) {
    routes['/controlnet/model_list'] = {
      // FastAPI reads `update` as a bool: "false", "0", "off", "no" are false; it defaults to true.
      GET: async (_req: unknown, _body: unknown, url: URL) => ({
        model_list: await installed.controlNetModels(
          !['false', '0', 'off', 'no', 'f', 'n'].includes((url.searchParams.get('update') ?? 'true').toLowerCase()),
        ),
      }),
    };
    routes['/controlnet/version'] = { GET: () => ({ version: 2 }) };
  }
  return routes;
}
