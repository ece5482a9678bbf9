import { Agent, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { type A1111Client, createA1111Client } from '../../src/a1111/client.js';
import { operationOf } from '../../src/a1111/operations.js';
import { postForStream } from '../../src/a1111/post-stream.js';
import type { Txt2ImgRequest } from '../../src/a1111/request-fields.js';
import { loadConfig } from '../../src/config/index.js';
import { WorkerError } from '../../src/errors.js';
import { captureLog } from '../support/logs.js';
import { simulator } from '../support/simulator.js';

/** A PNG of about `bytes` bytes (an 8-bit grey picture, stored without compression gains), as base64. */
function pictureOf(bytes: number): string {
  const side = Math.ceil(Math.sqrt(bytes / 4));
  const png = new PNG({ width: side, height: side });
  for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 7919) % 251;
  return PNG.sync.write(png, { deflateLevel: 0 }).toString('base64');
}

const servers: Server[] = [];
const clients: A1111Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const PNG_BASE64 = pictureOf(200);

function clientFor(url: string, env: Record<string, string> = {}) {
  const config = loadConfig({
    A1111_BASE_URL: url,
    A1111_RETRY_BASE_DELAY_MS: '2',
    A1111_RETRY_MAX_DELAY_MS: '5',
    ...env,
  });
  const client = createA1111Client(config.a1111, captureLog().log);
  clients.push(client);
  return client;
}

/** A bare HTTP server for answers the simulator does not give; `respond` sees each request in turn. */
async function rawServer(
  respond: (count: number, req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void,
) {
  let count = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => respond(++count, req, res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => count };
}

/** Resolves once `condition` holds (checked every 5 ms); fails the test after 10 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('the condition never held');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function failure(promise: Promise<unknown>): Promise<WorkerError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WorkerError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('the A1111 client against the simulator', () => {
  it('reads the lists the worker checks names against', async () => {
    const sim = await simulator();
    const client = clientFor(sim.url);

    expect((await client.listSamplers()).map((s) => s.name)).toContain('DPM++ 2M');
    expect((await client.listSchedulers())?.map((s) => s.name)).toEqual([
      'automatic',
      'uniform',
      'karras',
      'exponential',
      'polyexponential',
      'sgm_uniform',
    ]);
    expect(await client.listModels()).toEqual([
      {
        title: 'model.safetensors',
        model_name: 'model',
        hash: null,
        sha256: null,
        filename: '/model.safetensors',
        config: null,
      },
    ]);
    expect((await client.getOptions()).sd_model_checkpoint).toBe('model.safetensors');
    expect((await client.getProgress()).state.job_count).toBe(0);
  });

  it('asks for uncompressed bodies (gzip of base64 PNGs costs CPU on loopback and saves little)', async () => {
    const sim = await simulator();
    await clientFor(sim.url).listSamplers();
    expect(sim.calls[0]?.headers['accept-encoding']).toBe('identity');
  });

  it('tells a mounted txt2img route (GET answers 405) from a missing one (404)', async () => {
    const sim = await simulator();
    const client = clientFor(sim.url);

    expect(await client.isTxt2ImgRouteMounted()).toBe(true);
    sim.setRouteMounted('/txt2img', false);
    expect(await client.isTxt2ImgRouteMounted()).toBe(false);
  });

  it('classifies a pydantic 422 list by field', async () => {
    const sim = await simulator();
    const client = clientFor(sim.url);

    const error = await failure(client.txt2img({ steps: 'many', width: 'wide' } as unknown as Txt2ImgRequest));

    expect(error.code).toBe('BACKEND_REJECTED');
    expect(error.message).toBe(
      'A1111 rejected POST /sdapi/v1/txt2img as invalid (422): steps: value is not a valid integer; width: value is not a valid integer',
    );
    expect(error.details['validation']).toEqual([
      { field: 'steps', msg: 'value is not a valid integer', type: 'type_error.integer' },
      { field: 'width', msg: 'value is not a valid integer', type: 'type_error.integer' },
    ]);
  });

  it('classifies A1111’s 500 exception body as BACKEND_ERROR with the exception and its text', async () => {
    const sim = await simulator();
    const client = clientFor(sim.url);

    const error = await failure(client.txt2img({ override_settings: { not_an_option: 1 } }));

    expect(error.code).toBe('BACKEND_ERROR');
    expect(error.message).toBe("A1111 failed on POST /sdapi/v1/txt2img: KeyError: 'not_an_option'");
    expect(error.details).toMatchObject({ status: 500, a1111Error: 'KeyError' });
  });

  it('takes A1111’s application 404s for what they are: a rejected request, not a route to recover', async () => {
    const sim = await simulator();
    const client = clientFor(sim.url);
    const [img2img, interrogate] = ['POST /sdapi/v1/img2img', 'POST /sdapi/v1/interrogate'].map(operationOf);

    const noImage = await failure(client.send(img2img!, { prompt: 'x' }));
    const noModel = await failure(client.send(interrogate!, { image: PNG_BASE64, model: 'CLIP' }));

    expect(noImage).toMatchObject({
      code: 'BACKEND_REJECTED',
      details: { status: 404, detail: 'Init image not found' },
    });
    expect(noImage.message).toBe('A1111 rejected POST /sdapi/v1/img2img with 404: Init image not found');
    expect(noModel).toMatchObject({ code: 'BACKEND_REJECTED', details: { status: 404, detail: 'Model not found' } });
  });

  it('sends HTTP Basic credentials and explains a 401', async () => {
    const sim = await simulator({ apiAuth: 'alice:s3cret' });

    expect(await clientFor(sim.url, { A1111_API_AUTH: 'alice:s3cret' }).listModels()).toHaveLength(1);
    const error = await failure(clientFor(sim.url, { A1111_API_AUTH: 'alice:wrong' }).listModels());
    expect(error.code).toBe('BACKEND_REJECTED');
    expect(error.message).toContain('Incorrect username or password');
    expect(error.message).toContain('A1111_API_AUTH');
    expect(error.message).not.toContain('s3cret');
  });

  it('does not retry the readiness probe: one failure is one probe', async () => {
    const sim = await simulator();
    sim.failNext(1, 503, '/sd-models');
    const client = clientFor(sim.url);

    const error = await failure(client.probe());

    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(sim.callsTo('GET', '/sd-models')).toHaveLength(1);
  });
});

describe('the A1111 client against odd answers', () => {
  it('retries a GET whose connection was reset, and succeeds', async () => {
    const server = await rawServer((count, _req, res) => {
      if (count === 1) res.socket?.destroy();
      else res.setHeader('Content-Type', 'application/json').end('[]');
    });
    const client = clientFor(server.url);

    expect(await client.listModels()).toEqual([]);
    expect(server.count()).toBe(2);
  });

  it('does not send txt2img again after a reset: A1111 died while generating', async () => {
    const server = await rawServer((_count, _req, res) => res.socket?.destroy());
    const client = clientFor(server.url);

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_CRASHED');
    expect(server.count()).toBe(1);
  });

  it('reports a non-JSON 502 body from a proxy after the retries', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.statusCode = 502;
      res.setHeader('Content-Type', 'text/html');
      res.end('<html><body>502 Bad Gateway</body></html>');
    });
    const client = clientFor(server.url, { A1111_HTTP_RETRIES: '3' });

    const error = await failure(client.listSamplers());

    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.details).toMatchObject({
      status: 502,
      attempts: 4,
      body: '<html><body>502 Bad Gateway</body></html>',
    });
    expect(server.count()).toBe(4);
  });

  it('reads a whole answer that a proxy compressed although it was asked not to', async () => {
    const image = pictureOf(300_000);
    const body = JSON.stringify({ images: [image], parameters: { prompt: 'x' }, info: '{"seed":1}' });
    const server = await rawServer((_count, _req, res) => {
      const compressed = gzipSync(body);
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Encoding': 'gzip',
        'Content-Length': compressed.length,
      });
      res.end(compressed);
    });
    const client = clientFor(server.url);

    const answer = await client.txt2img({ prompt: 'x' });

    expect(answer.images).toEqual([image]);
    expect(answer.info).toBe('{"seed":1}');
  });

  it('reports a 200 of the wrong shape as BACKEND_ERROR', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.setHeader('Content-Type', 'application/json').end('{"images": "not a list"}');
    });
    const client = clientFor(server.url);

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_ERROR');
    expect(error.message).toContain('a body of an unexpected shape');
  });

  it('reports a request timeout as BACKEND_TIMEOUT and does not retry it', async () => {
    const server = await rawServer(() => undefined); // never answers
    const client = clientFor(server.url, { A1111_REQUEST_TIMEOUT_MS: '1000' });

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_TIMEOUT');
    expect(server.count()).toBe(1);
  });

  it('reports a refused connection as BACKEND_UNAVAILABLE after every retry', async () => {
    const server = await rawServer(() => undefined);
    const url = server.url;
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const client = clientFor(url, { A1111_HTTP_RETRIES: '2' });

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.details).toMatchObject({ code: 'ECONNREFUSED', attempts: 3 });
  });
});

describe('the txt2img call', () => {
  it('reaches A1111 as JSON with the credentials, uncompressed, and reads its answer', async () => {
    const sim = await simulator({ apiAuth: 'alice:s3cret' });
    const client = clientFor(sim.url, { A1111_API_AUTH: 'alice:s3cret' });

    const answer = await client.txt2img({ prompt: 'a lighthouse', steps: 2, width: 64, height: 64, seed: 5 });

    const [call] = sim.callsTo('POST', '/txt2img');
    expect(call?.headers).toMatchObject({
      'content-type': 'application/json',
      'accept-encoding': 'identity',
      authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}`,
    });
    expect(call?.body).toMatchObject({ prompt: 'a lighthouse', steps: 2, width: 64, height: 64, seed: 5 });
    expect(answer.images).toHaveLength(1);
    expect(Buffer.from(answer.images[0]!, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });

  it('tries a 502/503/504 again, with the attempts in the error once they are spent', async () => {
    const statuses = [503, 502, 504];
    const server = await rawServer((count, _req, res) => {
      res.statusCode = statuses[count - 1] ?? 503;
      res.end('<html>busy</html>');
    });
    const client = clientFor(server.url, { A1111_HTTP_RETRIES: '2' });

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.details).toMatchObject({ status: 504, attempts: 3, route: '/txt2img', body: '<html>busy</html>' });
    expect(server.count()).toBe(3);
  });

  it('keeps the status of an error answer whose body is cut short, and tries again', async () => {
    const server = await rawServer((count, _req, res) => {
      if (count === 1) {
        res.writeHead(503, { 'Content-Type': 'text/html', 'Content-Length': 500 });
        res.write('<html>', () => res.socket?.destroy());
        return;
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ images: [], parameters: {}, info: '{}' }));
    });
    const client = clientFor(server.url);

    // send_images: false, so no images is the whole answer.
    expect((await client.txt2img({ prompt: 'x', send_images: false })).images).toEqual([]);
    expect(server.count()).toBe(2);
  });

  it('does not try again once the supervised WebUI has exited, and says so', async () => {
    const server = await rawServer(() => undefined);
    const url = server.url;
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const config = loadConfig({ A1111_BASE_URL: url, A1111_HTTP_RETRIES: '5' });
    const client = createA1111Client(config.a1111, captureLog().log, {
      alive: false,
      isGone: true,
      describeExit: () => 'A1111 exited with code 1\nTraceback: CUDA error',
    });
    clients.push(client);

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_CRASHED');
    expect(error.message).toBe('A1111 exited with code 1 (during POST /sdapi/v1/txt2img)');
    expect(error.details).toMatchObject({ attempts: 1, backendExited: true, backendGone: true, code: 'ECONNREFUSED' });
  });

  it('stops waiting to try again when it is aborted between two attempts, and sends nothing more', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.statusCode = 503;
      res.end('{"detail":"busy"}');
    });
    // The wait before the second attempt (a minute or more) outlasts the test unless the abort ends it.
    const config = loadConfig({
      A1111_BASE_URL: server.url,
      A1111_RETRY_BASE_DELAY_MS: '60000',
      A1111_RETRY_MAX_DELAY_MS: '600000',
    });
    const captured = captureLog();
    const client = createA1111Client(config.a1111, captured.log);
    clients.push(client);
    const controller = new AbortController();

    const pending = failure(client.txt2img({ prompt: 'x' }, controller.signal));
    await until(() => captured.records().some((r) => r['message'] === 'retrying A1111 request'));
    controller.abort();
    const error = await pending;

    expect(error.code).toBe('CANCELLED');
    expect(server.count()).toBe(1);
  });

  it('closes the connection when it is aborted while A1111 generates', async () => {
    let closed = false;
    const server = await rawServer((_count, req) => req.socket.on('close', () => (closed = true)));
    const client = clientFor(server.url);
    const controller = new AbortController();

    const pending = failure(client.txt2img({ prompt: 'x' }, controller.signal));
    await until(() => server.count() === 1);
    controller.abort();

    expect((await pending).code).toBe('CANCELLED');
    await until(() => closed);
  });

  it('stops reading an answer when it is aborted, and closes the connection', async () => {
    let closed = false;
    const server = await rawServer((_count, req, res) => {
      req.socket.on('close', () => (closed = true));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 1000 });
      res.write('{"images":["iVBOR');
    });
    const agent = new Agent({ keepAlive: true });
    const controller = new AbortController();

    // The answer's headers are in; its body is being read when the abort comes, and the rest never comes.
    const answer = await postForStream({
      url: `${server.url}/sdapi/v1/txt2img`,
      body: '{"prompt":"x"}',
      headers: { 'Content-Type': 'application/json' },
      agent,
      timeoutMs: 0,
      signal: controller.signal,
    });
    const reading = (async () => {
      for await (const _chunk of answer.body) controller.abort();
    })();

    await expect(reading).rejects.toMatchObject({ code: 'ERR_CANCELED' });
    await until(() => closed);
    agent.destroy();
  });

  it('reports a compressed answer that cannot be decompressed as BACKEND_ERROR', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' });
      res.end(Buffer.from('this is not gzip at all'));
    });
    const client = clientFor(server.url);

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_ERROR');
    expect(error.message).toContain('could not be decompressed');
    expect(server.count()).toBe(1);
  });

  it('reports an answer whose body stops coming as BACKEND_TIMEOUT', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 1000 });
      res.write('{"images":["iVBOR');
    });
    const client = clientFor(server.url, { A1111_REQUEST_TIMEOUT_MS: '1000' });

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_TIMEOUT');
    expect(server.count()).toBe(1);
  });

  it('reports an answer cut short by a dying WebUI as BACKEND_CRASHED', async () => {
    const server = await rawServer((_count, _req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 1000 });
      res.write('{"images":["iVBOR', () => res.socket?.destroy());
    });
    const client = clientFor(server.url);

    const error = await failure(client.txt2img({ prompt: 'x' }));

    expect(error.code).toBe('BACKEND_CRASHED');
    expect(server.count()).toBe(1);
  });
});

describe('the way to A1111', () => {
  it('is direct even when HTTP_PROXY is set (for downloads, say): the WebUI is on this machine', async () => {
    const sim = await simulator();
    const proxy = await rawServer((_count, _req, res) => {
      res.writeHead(502);
      res.end('proxied');
    });
    const names = ['HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];
    const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
    process.env['HTTP_PROXY'] = proxy.url;
    process.env['http_proxy'] = proxy.url;
    // Without NO_PROXY naming the WebUI's address, as in most deployments.
    delete process.env['NO_PROXY'];
    delete process.env['no_proxy'];
    try {
      const models = await clientFor(sim.url).listModels();
      expect(models.length).toBeGreaterThan(0);
      expect(proxy.count()).toBe(0);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
