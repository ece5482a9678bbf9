import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, declaredSettings, loadConfig } from '../src/config/index.js';
import { renderConfigDoc, renderConfigTable, withReadmeTable } from '../src/tools/config-doc.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration from the environment', () => {
  it('has the documented defaults when nothing is set', () => {
    expect(loadConfig({})).toEqual({
      a1111: {
        baseUrl: 'http://127.0.0.1:3000',
        auth: undefined,
        launchCommand: undefined,
        restartLimit: 3,
        restartWindowMs: 600_000,
        restartDelayMs: 1_000,
        requestTimeoutMs: 600_000,
        httpRetries: 10,
        retryBaseDelayMs: 100,
        retryMaxDelayMs: 10_000,
        readyPollIntervalMs: 200,
        readyLogEvery: 15,
        readyTimeoutMs: 900_000,
        readyProbeTimeoutMs: 10_000,
        routeRecoveryAttempts: 3,
        routeRecoveryDelayMs: 5_000,
        interruptSettleTimeoutMs: 10_000,
        warmup: { prompt: 'warm-up', steps: 1, width: 64, height: 64 },
      },
      job: { timeoutMs: 0, progressPollIntervalMs: 1_000 },
      models: {
        dir: '/stable-diffusion-webui/models/Stable-diffusion',
        loraDir: '/stable-diffusion-webui/models/Lora',
        vaeDir: '/stable-diffusion-webui/models/VAE',
        embeddingsDir: '/stable-diffusion-webui/embeddings',
        controlnetDir: '/stable-diffusion-webui/models/ControlNet',
        volumeDir: undefined,
        allowedHosts: ['huggingface.co', '*.huggingface.co', 'hf.co', '*.hf.co', 'civitai.com', '*.civitai.com'],
        privateAllow: [],
        timeoutMs: 1_800_000,
        maxBytes: 17_179_869_184,
        minFreeBytes: 536_870_912,
        registryWaitMs: 3_000,
        hfToken: undefined,
        civitaiToken: undefined,
      },
      runpod: {
        concurrency: 1,
        refreshOnCrash: true,
        jobTakeErrorDelayMs: 1_000,
        jobTakeErrorDelayMaxMs: 30_000,
        throttleWaitMs: 5_000,
        jobDoneRetries: 5,
        jobDoneRetryDelayMs: 1_000,
        progressPostIntervalMs: 2_000,
        metricsLogIntervalMs: 60_000,
        endpointId: undefined,
        getJobUrl: undefined,
        postOutputUrl: undefined,
        postStreamUrl: undefined,
        pingUrl: undefined,
        pingIntervalMs: 10_000,
        apiKey: undefined,
        podId: undefined,
        podHostname: undefined,
      },
      images: {
        urlHosts: [],
        privateAllow: [],
        maxBytes: 67_108_864,
        timeoutMs: 30_000,
        maxPixels: 67_108_864,
      },
      results: {
        inlineMaxBytes: 15_000_000,
        streamMinBytes: 2_000_000,
        urlExpiresSeconds: 604_800,
        partBytes: 8_388_608,
        concurrency: 4,
        bucket: null,
      },
      observability: {
        logLevel: 'info',
        logFormat: 'auto',
        journalDir: undefined,
        journalKeep: 'failed',
        inspect: undefined,
        inspectPort: 8080,
      },
    });
  });

  it('names the variable, the value and the rule of a bad setting', () => {
    expect(problemsOf({ A1111_HTTP_RETRIES: 'ten' })).toEqual([
      'A1111_HTTP_RETRIES="ten": must be a whole number from 0 to 100',
    ]);
  });

  it("reads the bucket of runpod-python's rp_upload variables, and wants all three or none", () => {
    expect(
      loadConfig({
        BUCKET_ENDPOINT_URL: 'https://acct.r2.cloudflarestorage.com',
        BUCKET_ACCESS_KEY_ID: 'id',
        BUCKET_SECRET_ACCESS_KEY: 'secret',
        BUCKET_PUBLIC_URL: 'https://images.example.com/',
      }).results.bucket,
    ).toEqual({
      endpointUrl: 'https://acct.r2.cloudflarestorage.com',
      accessKeyId: 'id',
      secretAccessKey: 'secret',
      name: undefined,
      region: 'us-east-1',
      publicUrl: 'https://images.example.com',
    });
    expect(problemsOf({ BUCKET_ENDPOINT_URL: 'https://s3.example.com', BUCKET_ACCESS_KEY_ID: 'id' })).toEqual([
      'BUCKET_ENDPOINT_URL is set: BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY must be set too',
    ]);
    expect(problemsOf({ BUCKET_SECRET_ACCESS_KEY: 'hunter2', BUCKET_NAME: 'No_Such' })).toEqual([
      'BUCKET_NAME="No_Such": must be a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)',
    ]);
    expect(problemsOf({ BUCKET_SECRET_ACCESS_KEY: 'hunter2' })).toEqual([
      'BUCKET_ACCESS_KEY_ID or BUCKET_SECRET_ACCESS_KEY is set without BUCKET_ENDPOINT_URL',
    ]);
  });

  it('reads WARMUP as on, off or a file holding the request, and names a file it cannot use', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'warmup-config-'));
    const good = path.join(dir, 'good.json');
    const bad = path.join(dir, 'bad.json');
    await writeFile(good, '{"prompt": "a warm-up", "steps": 4, "width": 1024, "height": 1024}');
    await writeFile(bad, '[1, 2]');
    expect(loadConfig({ WARMUP: 'OFF' }).a1111.warmup).toBeNull();
    expect(loadConfig({ WARMUP: 'on' }).a1111.warmup).toEqual({ prompt: 'warm-up', steps: 1, width: 64, height: 64 });
    expect(loadConfig({ WARMUP: good }).a1111.warmup).toEqual({
      prompt: 'a warm-up',
      steps: 4,
      width: 1024,
      height: 1024,
    });
    expect(problemsOf({ WARMUP: bad })).toEqual([
      `WARMUP="${bad}": the file must hold a JSON object: a txt2img request`,
    ]);
    expect(problemsOf({ WARMUP: path.join(dir, 'missing.json') })).toEqual([
      `WARMUP="${path.join(dir, 'missing.json')}": cannot read it (ENOENT): must be on, off or a JSON file`,
    ]);
  });

  it('names a bad secret without showing its value', () => {
    expect(problemsOf({ A1111_API_AUTH: 'hunter2' })).toEqual([
      'A1111_API_AUTH=<7 characters, hidden>: must be `user:password`',
    ]);
  });

  it('reports every bad setting at once', () => {
    const problems = problemsOf({ A1111_READY_TIMEOUT_MS: '-5', A1111_BASE_URL: 'ftp://x', LOG_LEVEL: 'loud' });
    expect(problems).toEqual([
      'A1111_BASE_URL="ftp://x": must be an absolute http(s) URL',
      'A1111_READY_TIMEOUT_MS="-5": must be a whole number from 0 to 86400000 (0 = wait forever)',
      'LOG_LEVEL="loud": must be one of error, warn, info, debug (any case)',
    ]);
    expect(problemsOf({ WORKER_CONCURRENCY: '0', WORKER_REFRESH_ON_CRASH: 'maybe' })).toEqual([
      'WORKER_CONCURRENCY="0": must be a whole number from 1 to 16',
      'WORKER_REFRESH_ON_CRASH="maybe": must be true or false (also 1/0, yes/no)',
    ]);
    try {
      loadConfig({ LOG_LEVEL: 'loud' });
    } catch (error) {
      expect((error as Error).message).toBe(
        'Invalid configuration:\n  LOG_LEVEL="loud": must be one of error, warn, info, debug (any case)',
      );
    }
  });

  it('accepts RunPod’s level names, WARNING included, and falls back to RUNPOD_LOG_LEVEL', () => {
    expect(loadConfig({ RUNPOD_LOG_LEVEL: 'WARN' }).observability.logLevel).toBe('warn');
    expect(loadConfig({ RUNPOD_DEBUG_LEVEL: 'DEBUG' }).observability.logLevel).toBe('debug');
    expect(loadConfig({ LOG_LEVEL: 'error', RUNPOD_LOG_LEVEL: 'DEBUG' }).observability.logLevel).toBe('error');
    expect(loadConfig({ LOG_LEVEL: 'WARNING' }).observability.logLevel).toBe('warn');
    expect(loadConfig({ LOG_LEVEL: 'TRACE' }).observability.logLevel).toBe('debug');
    expect(loadConfig({ LOG_LEVEL: 'ERROR' }).observability.logLevel).toBe('error');
  });

  it('treats an empty variable as unset and trims a trailing slash off the base URL', () => {
    const config = loadConfig({ A1111_HTTP_RETRIES: '', A1111_BASE_URL: 'http://10.0.0.5:7861/sub/' });
    expect(config.a1111.httpRetries).toBe(10);
    expect(config.a1111.baseUrl).toBe('http://10.0.0.5:7861/sub');
  });

  it('splits A1111_API_AUTH at the first colon and refuses it without one', () => {
    expect(loadConfig({ A1111_API_AUTH: 'user:pa:ss' }).a1111.auth).toEqual({ username: 'user', password: 'pa:ss' });
    expect(problemsOf({ A1111_API_AUTH: 'nocolon' })).toEqual([
      'A1111_API_AUTH=<7 characters, hidden>: must be `user:password`',
    ]);
  });

  it('refuses a job-take URL without a job-done URL: results would have nowhere to go', () => {
    expect(problemsOf({ RUNPOD_WEBHOOK_GET_JOB: 'https://api.runpod.ai/v2/e/job-take/$ID' })).toEqual([
      'RUNPOD_WEBHOOK_POST_OUTPUT=null: must be set when RUNPOD_WEBHOOK_GET_JOB is set (there would be nowhere to post results)',
    ]);
  });

  it('refuses credentials in the base URL, pointing at A1111_API_AUTH', () => {
    expect(problemsOf({ A1111_BASE_URL: 'http://u:p@127.0.0.1:3000' })[0]).toContain('use A1111_API_AUTH');
  });

  it('documents every variable in docs/configuration.md, which is up to date', async () => {
    const committed = await readFile(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    expect(committed, 'docs/configuration.md is stale: run npm run docs:config').toBe(renderConfigDoc());
    for (const { setting } of declaredSettings()) expect(committed).toContain(`| \`${setting.env}\` |`);
  });
});

describe('README.md', () => {
  it('carries the current configuration table', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme, 'the table in README.md is stale: run npm run docs:config').toBe(withReadmeTable(readme));
    expect(readme).toContain(renderConfigTable());
  });
});
