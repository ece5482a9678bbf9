/**
 * Real S3 servers for tests: moto_server (installed on these machines; it does not check signatures)
 * started on a free port and stopped by its PID, and s3rver (npm), which checks V4 signatures, for
 * the tests that need a refusal of wrong credentials.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

// The SDK warns once per process that its releases after January 2027 want Node 22; tests do not need telling.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** The credentials tests give the worker (moto takes any). */
export const TEST_KEYS = { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key' } as const;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}

export interface S3Server {
  url: string;
  /** An SDK client of the server, as a person inspecting the bucket would use it. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** A bucket policy that lets anyone read the bucket's objects (docs/outputs.md has the same one). */
  allowPublicReads(name: string): Promise<void>;
  /** The keys of a bucket, sorted. */
  keys(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

function around(
  url: string,
  keys: { accessKeyId: string; secretAccessKey: string },
  stop: () => Promise<void>,
): S3Server {
  const client = new S3Client({
    endpoint: url,
    region: 'us-east-1',
    credentials: keys,
    forcePathStyle: true,
  });
  return {
    url,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async allowPublicReads(name) {
      const policy = {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PublicRead',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: `arn:aws:s3:::${name}/*`,
          },
        ],
      };
      await client.send(new PutBucketPolicyCommand({ Bucket: name, Policy: JSON.stringify(policy) }));
    },
    async keys(bucket) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      return (listed.Contents ?? []).map((item) => item.Key!).sort();
    },
    async stop() {
      client.destroy();
      await stop();
    },
  };
}

/** moto_server on a free port of 127.0.0.1, answering once this resolves. */
export async function startMoto(): Promise<S3Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 60_000;
  while (!(await answers(url))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not start on port ${port}: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return around(url, TEST_KEYS, async () => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
  });
}

/** s3rver on a free port, checking V4 signatures against `keys`, with `buckets` made. */
export async function startS3rver(buckets: string[]): Promise<S3Server> {
  const directory = await mkdtemp(path.join(tmpdir(), 's3rver-'));
  const port = await freePort();
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
    allowMismatchedSignatures: false,
  });
  await server.run();
  // s3rver's one account: S3RVER / S3RVER.
  return around(`http://127.0.0.1:${port}`, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, async () => {
    await server.close();
    await rm(directory, { recursive: true, force: true });
  });
}
