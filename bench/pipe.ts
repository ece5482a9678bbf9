/**
 * The floor for large results in `npm run bench`: the least a RunPod worker can do with A1111's answer.
 * It takes a job from job-take, sends its input to POST /sdapi/v1/txt2img, and streams the answer into
 * the job-done body as it arrives (`{"output":` + the answer + `}`), checking nothing. Run as its own
 * process, as the worker is, with RunPod's environment variables:
 *
 *   RUNPOD_WEBHOOK_GET_JOB=... RUNPOD_WEBHOOK_POST_OUTPUT=... A1111_BASE_URL=... node dist/bench/pipe.js
 */
import http from 'node:http';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const podId = process.env['RUNPOD_POD_ID'] ?? 'pipe';
const takeUrl = env('RUNPOD_WEBHOOK_GET_JOB').replaceAll('$RUNPOD_POD_ID', podId);
const doneUrl = env('RUNPOD_WEBHOOK_POST_OUTPUT').replaceAll('$RUNPOD_POD_ID', podId);
const a1111 = new URL('/sdapi/v1/txt2img', env('A1111_BASE_URL'));
const auth = process.env['RUNPOD_AI_API_KEY'];
const agent = new http.Agent({ keepAlive: true });

function take(): Promise<{ id: string; input: unknown } | null> {
  return new Promise((resolve, reject) => {
    const request = http.get(takeUrl, { agent, headers: auth ? { Authorization: auth } : {} }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve(response.statusCode === 200 && text ? (JSON.parse(text) as { id: string; input: unknown }) : null);
      });
    });
    request.on('error', reject);
  });
}

/** Sends the job to A1111 and pipes its answer into the job-done post; resolves when RunPod answered. */
function pipe(job: { id: string; input: unknown }): Promise<void> {
  const body = JSON.stringify(job.input);
  return new Promise((resolve, reject) => {
    const call = http.request(
      a1111,
      {
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (answer) => {
        const post = http.request(
          doneUrl.replaceAll('$ID', encodeURIComponent(job.id)),
          {
            method: 'POST',
            agent,
            headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
          },
          (response) => {
            response.resume();
            response.on('end', () => resolve());
          },
        );
        post.on('error', reject);
        post.write('{"output":');
        answer.on('data', (chunk: Buffer) => post.write(chunk));
        answer.on('end', () => post.end('}'));
        answer.on('error', reject);
      },
    );
    call.on('error', reject);
    call.end(body);
  });
}

let stopping = false;
process.once('SIGTERM', () => {
  stopping = true;
});
while (!stopping) {
  const job = await take().catch(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return null;
  });
  if (job) await pipe(job);
}
agent.destroy();
