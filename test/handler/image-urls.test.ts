/**
 * Image inputs by URL, over real HTTP: an image server on loopback serves real PNG, JPEG and WebP files
 * and misbehaves on request; the worker fetches them and A1111 (the simulator) gets base64 only. Refused
 * URLs never reach the image server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobOutcome } from '../../src/job/outcome.js';
import { FileServer } from '../support/file-server.js';
import { bombPng, jpegBomb, jpegImage, pngImage, webpImage } from '../support/images.js';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

const LOOPBACK = { IMAGE_URL_PRIVATE_ALLOW: '127.0.0.1' };

function img2img(images: string[], extra: Record<string, unknown> = {}) {
  return {
    api: { method: 'POST', endpoint: '/sdapi/v1/img2img' },
    payload: {
      prompt: 'from a URL',
      init_images: images,
      batch_size: Math.max(1, images.length),
      steps: 2,
      width: 64,
      height: 64,
      ...extra,
    },
  };
}

function failure(outcome: JobOutcome) {
  if (outcome.ok) throw new Error('expected the job to fail');
  return outcome.failure;
}

/** Everything the simulator was sent, as one string: no URL may be in it. */
function sentToA1111(sim: { calls: { body: unknown }[] }): string {
  return JSON.stringify(sim.calls.map((call) => call.body));
}

async function imageServer(host = '127.0.0.1') {
  const server = new FileServer();
  await server.start(host);
  return server;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

describe('image URLs the worker fetches', () => {
  it('sends A1111 the bytes of PNG, JPEG and WebP files as base64, never the URLs', async () => {
    const sim = await simulator();
    const files = await imageServer();
    const png = files.serve('/a.png', pngImage(64, 64, 5), { contentType: 'image/png' });
    const jpeg = files.serve('/b.jpg', jpegImage(64, 64), { contentType: 'image/jpeg' });
    const webp = files.serve('/c.webp', webpImage(64, 64), { contentType: 'image/webp' });
    const { runner } = testWorker(sim.url, LOOPBACK);

    const outcome = await runner.run({
      id: 'urls',
      input: img2img([`${files.url}/a.png`, `${files.url}/b.jpg`, `${files.url}/c.webp`]),
    });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(sim.callsTo('POST', '/img2img')[0]?.body).toMatchObject({
      init_images: [png, jpeg, webp].map((file) => file.bytes.toString('base64')),
    });
    expect(sentToA1111(sim)).not.toContain('http');
    expect(outcome.report.timings_ms.fetchingImages).toBeGreaterThan(0);
    expect(outcome.report.notes).toEqual([
      `init_images[0] fetched from its URL (${png.bytes.length} bytes)`,
      `init_images[1] fetched from its URL (${jpeg.bytes.length} bytes)`,
      `init_images[2] fetched from its URL (${webp.bytes.length} bytes)`,
    ]);
  });

  it('fetches the images wherever an operation takes one: mask, extras, png-info, interrogate, ControlNet units', async () => {
    const sim = await simulator();
    const files = await imageServer();
    const image = files.serve('/i.png', pngImage(64, 64, 9), { contentType: 'image/png' });
    const url = `${files.url}/i.png`;
    const base64 = image.bytes.toString('base64');
    const { runner } = testWorker(sim.url, LOOPBACK);
    const jobs = [
      img2img([url], {
        mask: url,
        alwayson_scripts: { controlnet: { args: [{ input_image: url, module: 'canny' }] } },
      }),
      { api: { method: 'POST', endpoint: '/sdapi/v1/extra-single-image' }, payload: { image: url } },
      {
        api: { method: 'POST', endpoint: '/sdapi/v1/extra-batch-images' },
        payload: { imageList: [{ data: url, name: 'i' }] },
      },
      { api: { method: 'POST', endpoint: '/sdapi/v1/png-info' }, payload: { image: url } },
      { api: { method: 'POST', endpoint: '/sdapi/v1/interrogate' }, payload: { image: url } },
      {
        prompt: 'txt2img with a unit',
        steps: 2,
        alwayson_scripts: {
          controlnet: { args: [{ image: { image: url, mask: url } }] },
          reactor: { args: [url, true, '0', '0'] },
        },
      },
    ];

    for (const [index, input] of jobs.entries()) {
      const outcome = await runner.run({ id: `everywhere-${index}`, input });
      if (!outcome.ok) throw new Error(`job ${index}: ${outcome.failure.message}`);
    }

    expect(sim.callsTo('POST', '/img2img')[0]?.body).toMatchObject({
      init_images: [base64],
      mask: base64,
      alwayson_scripts: { controlnet: { args: [{ input_image: base64, module: 'canny' }] } },
    });
    expect(sim.callsTo('POST', '/extra-single-image')[0]?.body).toMatchObject({ image: base64 });
    expect(sim.callsTo('POST', '/extra-batch-images')[0]?.body).toMatchObject({
      imageList: [{ data: base64, name: 'i' }],
    });
    expect(sim.callsTo('POST', '/png-info')[0]?.body).toEqual({ image: base64 });
    expect(sim.callsTo('POST', '/interrogate')[0]?.body).toEqual({ image: base64 });
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).toMatchObject({
      alwayson_scripts: {
        controlnet: { args: [{ image: { image: base64, mask: base64 } }] },
        reactor: { args: [base64, true, '0', '0'] },
      },
    });
    expect(sentToA1111(sim)).not.toContain('http');
  });

  it('fetches the URLs of one job at the same time', async () => {
    const sim = await simulator();
    // Answers nothing until four requests are open at once (or a second has passed).
    let open = 0;
    let most = 0;
    const waiting: ServerResponse[] = [];
    const picture = pngImage(32, 32, 4);
    const release = () => {
      for (const res of waiting.splice(0)) res.writeHead(200, { 'Content-Type': 'image/png' }).end(picture);
    };
    const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
      open++;
      most = Math.max(most, open);
      res.on('close', () => open--);
      waiting.push(res);
      if (waiting.length === 4) release();
      else setTimeout(release, 1_000);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { runner } = testWorker(sim.url, LOOPBACK);

    const outcome = await runner.run({ id: 'together', input: img2img([1, 2, 3, 4].map((n) => `${base}/${n}.png`)) });

    expect(outcome.ok).toBe(true);
    expect(most).toBe(4);
  });

  it('follows a chain of redirects, each checked, and gives up after five', async () => {
    const sim = await simulator();
    const files = await imageServer();
    const image = files.serve('/end.png', pngImage(16, 16), { contentType: 'image/png' });
    for (let hop = 1; hop <= 6; hop++) {
      files.serve(`/hop${hop}`, Buffer.alloc(0), {
        behaviour: { kind: 'redirect', to: hop === 1 ? `${files.url}/end.png` : `${files.url}/hop${hop - 1}` },
      });
    }
    const { runner } = testWorker(sim.url, LOOPBACK);

    const three = await runner.run({ id: 'three-hops', input: img2img([`${files.url}/hop3`]) });
    const six = await runner.run({ id: 'six-hops', input: img2img([`${files.url}/hop6`]) });

    expect(three.ok).toBe(true);
    expect(sim.callsTo('POST', '/img2img')[0]?.body).toMatchObject({ init_images: [image.bytes.toString('base64')] });
    expect(failure(six).message).toMatch(/^init_images\[0\]: .*redirect/);
    expect(sim.callsTo('POST', '/img2img')).toHaveLength(1);
  });

  it('refuses a redirect to a private address it was not allowed, and never calls it', async () => {
    const sim = await simulator();
    const files = await imageServer();
    const hidden = await imageServer('127.0.0.2');
    hidden.serve('/secret.png', pngImage(16, 16), { contentType: 'image/png' });
    files.serve('/go', Buffer.alloc(0), { behaviour: { kind: 'redirect', to: `${hidden.url}/secret.png` } });
    const { runner } = testWorker(sim.url, LOOPBACK);

    const outcome = await runner.run({ id: 'private-redirect', input: img2img([`${files.url}/go`]) });

    expect(failure(outcome)).toMatchObject({
      code: 'INVALID_INPUT',
      details: { problems: [{ field: 'init_images[0]', value: `${files.url}/go` }] },
    });
    expect(failure(outcome).message).toContain('IMAGE_URL_PRIVATE_ALLOW');
    expect(hidden.requests).toEqual([]);
    expect(sim.callsTo('POST', '/img2img')).toEqual([]);
  });

  it('refuses an image over the size cap, announced or not', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/big.png', pngImage(200, 200), { contentType: 'image/png' });
    files.serve('/big-unannounced.png', pngImage(200, 200), {
      contentType: 'image/png',
      behaviour: { kind: 'no-length' },
    });
    const { runner } = testWorker(sim.url, { ...LOOPBACK, IMAGE_URL_MAX_BYTES: '2000' });

    for (const name of ['big.png', 'big-unannounced.png']) {
      const outcome = await runner.run({
        id: name,
        input: img2img([pngImage(8, 8).toString('base64'), `${files.url}/${name}`]),
      });
      expect(failure(outcome)).toMatchObject({
        code: 'INVALID_INPUT',
        details: { problems: [{ field: 'init_images[1]' }] },
      });
      expect(failure(outcome).message).toContain('IMAGE_URL_MAX_BYTES');
    }
    expect(sim.callsTo('POST', '/img2img')).toEqual([]);
  });

  it('gives up on a server too slow to send the image, IMAGE_FETCH_FAILED', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/slow.png', pngImage(64, 64), { behaviour: { kind: 'slow', bytesPerChunk: 64, delayMs: 100 } });
    const { runner } = testWorker(sim.url, { ...LOOPBACK, IMAGE_URL_TIMEOUT_MS: '400' });

    const outcome = await runner.run({ id: 'slow', input: img2img([`${files.url}/slow.png`]) });

    expect(failure(outcome)).toMatchObject({
      code: 'IMAGE_FETCH_FAILED',
      phase: 'fetchingImages',
      details: { field: 'init_images[0]' },
    });
    expect(sim.callsTo('POST', '/img2img')).toEqual([]);
  });

  it('reads the type from the bytes: a PNG sent as text/html is taken, an HTML page sent as image/png is not', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/mislabelled.png', pngImage(16, 16), { contentType: 'text/html' });
    files.serve('/page.png', Buffer.from('<html><body>Not found</body></html>'), { contentType: 'image/png' });
    const { runner } = testWorker(sim.url, LOOPBACK);

    const mislabelled = await runner.run({ id: 'mislabelled', input: img2img([`${files.url}/mislabelled.png`]) });
    const page = await runner.run({ id: 'page', input: img2img([`${files.url}/page.png`]) });

    expect(mislabelled.ok).toBe(true);
    expect(failure(page)).toMatchObject({
      code: 'INVALID_INPUT',
      details: { problems: [{ field: 'init_images[0]' }] },
    });
    expect(failure(page).message).toContain('it is not a PNG, JPEG, WebP, GIF or BMP image');
  });

  it('refuses a picture whose header claims more pixels than IMAGE_MAX_PIXELS, before A1111 decodes it', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/bomb.png', bombPng(60_000, 60_000), { contentType: 'image/png' });
    files.serve('/bomb.jpg', jpegBomb(60_000, 60_000), { contentType: 'image/jpeg' });
    const { runner } = testWorker(sim.url, LOOPBACK);

    const byUrl = await runner.run({ id: 'bomb-url', input: img2img([`${files.url}/bomb.png`]) });
    const jpegByUrl = await runner.run({ id: 'bomb-jpeg-url', input: img2img([`${files.url}/bomb.jpg`]) });
    const inline = await runner.run({
      id: 'bomb-inline',
      input: img2img([bombPng(60_000, 60_000).toString('base64')]),
    });

    for (const outcome of [byUrl, jpegByUrl, inline]) {
      expect(failure(outcome)).toMatchObject({
        code: 'INVALID_INPUT',
        details: { problems: [{ field: 'init_images[0]' }] },
      });
      expect(failure(outcome).message).toContain('60000×60000 pixels');
    }
    expect(sim.callsTo('POST', '/img2img')).toEqual([]);
  });

  it('answers a missing image IMAGE_FETCH_FAILED, naming the field and the status', async () => {
    const sim = await simulator();
    const files = await imageServer();
    const { runner } = testWorker(sim.url, LOOPBACK);

    const outcome = await runner.run({
      id: 'missing',
      input: {
        api: { method: 'POST', endpoint: '/sdapi/v1/extra-single-image' },
        payload: { image: `${files.url}/gone.png` },
      },
    });

    expect(failure(outcome)).toMatchObject({ code: 'IMAGE_FETCH_FAILED', details: { field: 'image' } });
    expect(failure(outcome).message).toContain('404');
  });
});

describe('image URLs the worker refuses without a request', () => {
  it('refuses loopback, link-local metadata, file: and hosts off IMAGE_URL_HOSTS; the image server sees nothing', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/x.png', pngImage(8, 8), { contentType: 'image/png' });
    const port = new URL(files.url).port;
    const local = testWorker(sim.url);
    const listed = testWorker(sim.url, { ...LOOPBACK, IMAGE_URL_HOSTS: 'images.example.com' });
    const cases: [typeof local, string, RegExp][] = [
      [local, `http://127.0.0.1:${port}/x.png`, /127\.0\.0\.1.*IMAGE_URL_PRIVATE_ALLOW/],
      [local, `http://localhost:${port}/x.png`, /localhost resolves to 127\.0\.0\.1/],
      [local, `http://[::1]:${port}/x.png`, /::1/],
      [local, 'http://169.254.169.254/latest/meta-data/iam', /169\.254\.169\.254/],
      [local, 'file:///etc/passwd', /only http\(s\) URLs/],
      [listed, `http://127.0.0.1:${port}/x.png`, /IMAGE_URL_HOSTS/],
    ];

    for (const [worker, url, reason] of cases) {
      const outcome = await worker.runner.run({ id: `refused-${url}`, input: img2img([url]) });
      expect(failure(outcome), url).toMatchObject({
        code: 'INVALID_INPUT',
        details: { problems: [{ field: 'init_images[0]' }] },
      });
      expect(failure(outcome).message, url).toMatch(reason);
    }
    expect(files.requests).toEqual([]);
    expect(sim.callsTo('POST', '/img2img')).toEqual([]);
  });

  it('keeps redirects on IMAGE_URL_HOSTS too: an open redirect on a listed host leads nowhere else', async () => {
    const sim = await simulator();
    const files = await imageServer();
    files.serve('/x.png', pngImage(8, 8), { contentType: 'image/png' });
    const port = new URL(files.url).port;
    files.serve('/go', Buffer.alloc(0), { behaviour: { kind: 'redirect', to: `http://localhost:${port}/x.png` } });
    const { runner } = testWorker(sim.url, { ...LOOPBACK, IMAGE_URL_HOSTS: '127.0.0.1' });

    const outcome = await runner.run({ id: 'redirect-off-list', input: img2img([`${files.url}/go`]) });

    expect(failure(outcome)).toMatchObject({
      code: 'INVALID_INPUT',
      details: { problems: [{ field: 'init_images[0]' }] },
    });
    expect(failure(outcome).message).toMatch(/localhost.*IMAGE_URL_HOSTS/);
    expect(files.requests.map((request) => request.path)).toEqual(['/go']);
  });

  it('refuses a URL that is none, naming the field, before anything is fetched', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url, LOOPBACK);

    const outcome = await runner.run({
      id: 'bad-urls',
      input: img2img(['http://', 'http://exa mple.com/a.png', 'https://[::1/x']),
    });

    const problems = failure(outcome).details?.['problems'] as { field: string; rule: string }[];
    expect(problems.map((problem) => problem.field)).toEqual(['init_images[0]', 'init_images[1]', 'init_images[2]']);
    expect(problems.every((problem) => problem.rule.includes('it is not a valid URL'))).toBe(true);
    expect(failure(outcome).phase).toBe('booting');
  });

  it('refuses inline images that are not images, naming the field and index', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const good = pngImage(8, 8).toString('base64');

    const outcome = await runner.run({
      id: 'inline',
      input: img2img(
        [good, 'not base64 at all!', 'data:text/plain;base64,aGVsbG8=', Buffer.from('hello').toString('base64')],
        { steps: 0 },
      ),
    });

    // One answer lists every broken rule, the images' with the other fields'.
    const problems = failure(outcome).details?.['problems'] as { field: string; rule: string }[];
    expect(problems.map((p) => p.field)).toEqual(['steps', 'init_images[1]', 'init_images[2]', 'init_images[3]']);
    expect(problems[1]?.rule).toContain('it is not base64');
    expect(problems[2]?.rule).toContain('"text/plain" is not an image');
    expect(sim.calls).toEqual([]);
  });

  it('refuses a positional script argument that is a file: URL or a data URL of no image', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'positional',
      input: {
        prompt: 'p',
        alwayson_scripts: {
          reactor: { args: ['file:///etc/passwd', true, 'inswapper_128.onnx'] },
          other: { args: ['data:text/plain;base64,aGVsbG8=', 'plain text: kept'] },
        },
      },
    });

    const problems = failure(outcome).details?.['problems'] as { field: string; rule: string }[];
    expect(problems.map((p) => p.field)).toEqual([
      'alwayson_scripts.reactor.args[0]',
      'alwayson_scripts.other.args[0]',
    ]);
    expect(problems[0]?.rule).toMatch(/only http\(s\) URLs/);
    expect(problems[1]?.rule).toContain('"text/plain" is not an image');
    expect(sim.calls).toEqual([]);
  });
});
