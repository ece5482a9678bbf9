/**
 * The simulator's img2img, extras, png-info, interrogate and read routes against the A1111 v1.9.3
 * contract, spoken to with plain fetch, failures included.
 */
import { describe, expect, it } from 'vitest';
import { parseGenerationParameters } from '../../src/simulator/infotext.js';
import { FileServer } from '../support/file-server.js';
import { jpegImage, pngImage } from '../support/images.js';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';

async function post(url: string, body: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const a1111 = (status: number, error: string, detail: string, errors = '') => ({
  status,
  body: { error, detail, body: '', errors },
});

const png = pngImage(32, 32, 7).toString('base64');

describe('POST /sdapi/v1/img2img', () => {
  it('answers with 57 echoed fields, init_images and mask blanked unless include_init_images', async () => {
    const sim = await simulator();
    const plain = await post(`${sim.url}/sdapi/v1/img2img`, { init_images: [png], steps: 4, width: 32, height: 32 });
    const kept = await post(`${sim.url}/sdapi/v1/img2img`, {
      init_images: [png],
      include_init_images: true,
      steps: 4,
      width: 32,
      height: 32,
    });

    expect(plain.status).toBe(200);
    const parameters = plain.body['parameters'] as Record<string, unknown>;
    expect(Object.keys(parameters)).toHaveLength(57);
    expect(parameters).toMatchObject({
      init_images: null,
      mask: null,
      denoising_strength: 0.75,
      resize_mode: 0,
      mask_blur_x: 4,
    });
    expect((kept.body['parameters'] as Record<string, unknown>)['init_images']).toEqual([png]);
    expect(JSON.parse(plain.body['info'] as string).infotexts[0]).toContain('Denoising strength: 0.75');
  });

  it('draws from the seed and the init image: another image, another picture', async () => {
    const sim = await simulator();
    const run = async (image: string) =>
      (await post(`${sim.url}/sdapi/v1/img2img`, { init_images: [image], seed: 3, steps: 2, width: 32, height: 32 }))
        .body;

    const [a, b, again] = [await run(png), await run(pngImage(32, 32, 8).toString('base64')), await run(png)];

    expect((a['images'] as string[])[0]).not.toBe((b['images'] as string[])[0]);
    expect((a['images'] as string[])[0]).toBe((again['images'] as string[])[0]);
  });

  it('repeats one init image batch_size times and makes a batch of two or more the batch', async () => {
    const sim = await simulator();
    const one = await post(`${sim.url}/sdapi/v1/img2img`, {
      init_images: [png],
      batch_size: 3,
      steps: 1,
      width: 32,
      height: 32,
    });
    const two = await post(`${sim.url}/sdapi/v1/img2img`, {
      init_images: [png, png],
      batch_size: 4,
      steps: 1,
      width: 32,
      height: 32,
    });
    const many = await post(`${sim.url}/sdapi/v1/img2img`, { init_images: [png, png, png], steps: 1 });

    expect(one.body['images']).toHaveLength(3);
    expect(two.body['images']).toHaveLength(2);
    expect(many).toEqual(a1111(500, 'RuntimeError', '', 'bad number of images passed: 3; expecting 1 or less'));
  });

  it('fails as v1.9.3 does on the inputs it mishandles', async () => {
    const sim = await simulator();
    const files = new FileServer();
    await files.start();
    files.serve('/a.png', pngImage(8, 8));
    const img2img = (body: Record<string, unknown>) => post(`${sim.url}/sdapi/v1/img2img`, { steps: 1, ...body });

    expect(await img2img({})).toEqual(a1111(404, 'HTTPException', 'Init image not found'));
    expect(await img2img({ init_images: null })).toEqual(a1111(404, 'HTTPException', 'Init image not found'));
    expect(await img2img({ init_images: [`data:image/png;charset=utf-8;base64,${png}`] })).toEqual(
      a1111(500, 'IndexError', '', 'list index out of range'),
    );
    expect(await img2img({ init_images: ['data:image/png,abc'] })).toEqual(
      a1111(500, 'IndexError', '', 'list index out of range'),
    );
    expect(await img2img({ init_images: ['bm90IGFuIGltYWdl'] })).toEqual(
      a1111(500, 'HTTPException', 'Invalid encoded image'),
    );
    expect(await img2img({ init_images: ['abcde'] })).toEqual(a1111(500, 'HTTPException', 'Invalid encoded image'));
    expect(await img2img({ init_images: [7] })).toEqual(
      a1111(500, 'AttributeError', '', "'int' object has no attribute 'startswith'"),
    );
    expect(await img2img({ init_images: [png], mask: '' })).toEqual(
      a1111(500, 'AttributeError', '', "'str' object has no attribute 'mode'"),
    );
    // A1111 would fetch a URL itself, but refuses one that is not global (a port alone fails the check).
    expect(await img2img({ init_images: [`${files.url}/a.png`] })).toEqual(
      a1111(500, 'HTTPException', 'Request to local resource not allowed'),
    );
    expect(files.requests).toEqual([]);
    // The mask is read before the queue, so a bad one fails before the init images are looked at.
    expect(await img2img({ init_images: [7], mask: 'AAAA' })).toEqual(
      a1111(500, 'HTTPException', 'Invalid encoded image'),
    );
    expect((await img2img({ init_images: [png], denoising_strength: null })).body).toEqual({
      detail: [
        {
          loc: ['body', 'denoising_strength'],
          msg: 'none is not an allowed value',
          type: 'type_error.none.not_allowed',
        },
      ],
    });
    expect(sim.engine.generations).toEqual([]);
  });

  it('opens base64 the way Python does: whitespace and stray characters dropped, JPEGs too', async () => {
    const sim = await simulator();
    const spaced = png.replace(/(.{60})/g, '$1\n');
    const jpeg = jpegImage(16, 16).toString('base64');

    const result = await post(`${sim.url}/sdapi/v1/img2img`, { init_images: [spaced, jpeg], steps: 1, batch_size: 2 });

    expect(result.status).toBe(200);
  });
});

describe('POST /sdapi/v1/extra-single-image and /extra-batch-images', () => {
  it('re-encodes the image unchanged by default, with html_info "<p></p>"', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/extra-single-image`, { image: png });

    expect(status).toBe(200);
    expect(body['html_info']).toBe('<p></p>');
    const picture = decodePng(body['image'] as string);
    expect([picture.width, picture.height]).toEqual([32, 32]);
    expect(picture.data.equals(decodePng(png).data)).toBe(true);
  });

  it('resizes to a multiple of 8 when scaling by a factor, and crops to the size when scaling to one', async () => {
    const sim = await simulator();
    const odd = pngImage(30, 20, 2).toString('base64');

    const by = await post(`${sim.url}/sdapi/v1/extra-single-image`, {
      image: odd,
      upscaler_1: 'Lanczos',
      upscaling_resize: 1.5,
    });
    const to = await post(`${sim.url}/sdapi/v1/extra-single-image`, {
      image: odd,
      upscaler_1: 'R-ESRGAN 4x+',
      resize_mode: 1,
      upscaling_resize_w: 64,
      upscaling_resize_h: 64,
    });
    const byDefault = await post(`${sim.url}/sdapi/v1/extra-single-image`, { image: odd, upscaler_1: 'Nearest' });

    const size = (result: { body: Record<string, unknown> }) => {
      const picture = decodePng(result.body['image'] as string);
      return [picture.width, picture.height];
    };
    expect(size(by)).toEqual([40, 24]);
    expect(by.body['html_info']).toBe('<p>Postprocess upscale by: 1.5, Postprocess upscaler: Lanczos</p>');
    expect(size(to)).toEqual([64, 64]);
    expect(to.body['html_info']).toBe(
      '<p>Postprocess upscale to: 64x64, Postprocess crop to: 64x64, Postprocess upscaler: R-ESRGAN 4x+</p>',
    );
    // The default factor is the model's unvalidated int 2.
    expect(byDefault.body['html_info']).toBe('<p>Postprocess upscale by: 2, Postprocess upscaler: Nearest</p>');
    expect(decodePng(to.body['image'] as string).text['postprocessing']).toBe(
      'Postprocess upscale to: 64x64, Postprocess crop to: 64x64, Postprocess upscaler: R-ESRGAN 4x+',
    );
  });

  it('fails on an upscaler it does not have, and checks the second only when the first is one', async () => {
    const sim = await simulator();
    const extras = (body: Record<string, unknown>) =>
      post(`${sim.url}/sdapi/v1/extra-single-image`, { image: png, ...body });

    expect(await extras({ upscaler_1: 'lanczos' })).toEqual(
      a1111(500, 'AssertionError', '', 'could not find upscaler named lanczos'),
    );
    expect((await extras({ upscaler_1: 'None', upscaler_2: 'nope' })).status).toBe(200);
    expect(await extras({ upscaler_1: 'Lanczos', upscaler_2: 'nope' })).toEqual(
      a1111(500, 'AssertionError', '', 'could not find upscaler named nope'),
    );
    expect(await extras({ image: '' })).toEqual(a1111(500, 'HTTPException', 'Invalid encoded image'));
  });

  it('validates the model as pydantic v1: resize_mode 0 or 1 only, visibilities in [0, 1], imageList required', async () => {
    const sim = await simulator();

    const single = await post(`${sim.url}/sdapi/v1/extra-single-image`, {
      image: png,
      resize_mode: '1',
      gfpgan_visibility: 1.5,
      upscaling_resize: 0,
    });
    const batch = await post(`${sim.url}/sdapi/v1/extra-batch-images`, { imageList: [{ data: png }] });
    const missing = await post(`${sim.url}/sdapi/v1/extra-batch-images`, {});

    expect(single.status).toBe(422);
    expect(single.body['detail']).toEqual([
      {
        loc: ['body', 'resize_mode'],
        msg: 'unexpected value; permitted: 0, 1',
        type: 'value_error.const',
        ctx: { given: '1', permitted: [0, 1] },
      },
      {
        loc: ['body', 'gfpgan_visibility'],
        msg: 'ensure this value is less than or equal to 1',
        type: 'value_error.number.not_le',
        ctx: { limit_value: 1 },
      },
      {
        loc: ['body', 'upscaling_resize'],
        msg: 'ensure this value is greater than 0',
        type: 'value_error.number.not_gt',
        ctx: { limit_value: 0 },
      },
    ]);
    expect(batch.body['detail']).toEqual([
      { loc: ['body', 'imageList', 0, 'name'], msg: 'field required', type: 'value_error.missing' },
    ]);
    expect(missing.body['detail']).toEqual([
      { loc: ['body', 'imageList'], msg: 'field required', type: 'value_error.missing' },
    ]);
  });

  it('answers a batch with one image per entry and the last one’s info', async () => {
    const sim = await simulator();
    const { body } = await post(`${sim.url}/sdapi/v1/extra-batch-images`, {
      imageList: [
        { data: png, name: 'a' },
        { data: pngImage(16, 16).toString('base64'), name: 'b' },
      ],
      upscaler_1: 'Lanczos',
      upscaling_resize: 2,
    });

    expect((body['images'] as string[]).map((image) => decodePng(image).width)).toEqual([64, 32]);
    expect(body['html_info']).toBe('<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>');
  });
});

describe('POST /sdapi/v1/png-info', () => {
  it('returns the infotext, the other text chunks and the parsed parameters', async () => {
    const sim = await simulator();
    const made = await post(`${sim.url}/sdapi/v1/txt2img`, {
      prompt: 'a cat',
      negative_prompt: 'dogs',
      seed: 9,
      steps: 2,
      width: 32,
      height: 32,
    });
    const upscaled = await post(`${sim.url}/sdapi/v1/extra-single-image`, {
      image: (made.body['images'] as string[])[0],
      upscaler_1: 'Nearest',
    });

    const { status, body } = await post(`${sim.url}/sdapi/v1/png-info`, { image: upscaled.body['image'] });

    expect(status).toBe(200);
    expect(body['info']).toMatch(/^a cat\nNegative prompt: dogs\nSteps: 2, Sampler: Euler, /);
    expect(body['items']).toEqual({ postprocessing: 'Postprocess upscale by: 2, Postprocess upscaler: Nearest' });
    expect(body['parameters']).toMatchObject({
      Prompt: 'a cat',
      'Negative prompt': 'dogs',
      Seed: '9',
      'Size-1': '32',
      'Clip skip': '1',
    });
  });

  it('requires the image, and fails on one that is none', async () => {
    const sim = await simulator();

    expect((await post(`${sim.url}/sdapi/v1/png-info`, {})).body).toEqual({
      detail: [{ loc: ['body', 'image'], msg: 'field required', type: 'value_error.missing' }],
    });
    expect(await post(`${sim.url}/sdapi/v1/png-info`, { image: 'AAAA' })).toEqual(
      a1111(500, 'HTTPException', 'Invalid encoded image'),
    );
  });
});

describe('parse_generation_parameters', () => {
  it('reads the parameters line only when it has three pairs or more, and adds v1.9.3’s defaults', () => {
    expect(parseGenerationParameters('just a prompt, no params')).toMatchObject({
      Prompt: 'just a prompt, no params',
      'Negative prompt': '',
      'Masked area padding': 32,
      'Hires resize-1': 0,
      'Refiner switch by sampling steps': false,
    });
    const parsed = parseGenerationParameters(
      'a (cat:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 123, Size: 512x768, Lora hashes: "foo: 0123456789ab", Version: v1.5.1',
    );
    expect(parsed).toMatchObject({
      Steps: '20',
      'Size-1': '512',
      'Size-2': '768',
      'Lora hashes': 'foo: 0123456789ab',
      Prompt: 'a (cat:1.2)',
      Emphasis: 'Original',
      'Downcast alphas_cumprod': true,
    });
    expect(Object.keys(parsed).slice(0, 3)).toEqual(['Steps', 'Sampler', 'CFG scale']);
  });
});

describe('POST /sdapi/v1/interrogate', () => {
  it('captions with clip or deepdanbooru, and answers another model 404 "Model not found"', async () => {
    const sim = await simulator();

    const clip = await post(`${sim.url}/sdapi/v1/interrogate`, { image: png });
    const tags = await post(`${sim.url}/sdapi/v1/interrogate`, { image: png, model: 'deepdanbooru' });

    expect(clip.status).toBe(200);
    expect(Object.keys(clip.body)).toEqual(['caption']);
    expect(tags.body['caption']).not.toBe(clip.body['caption']);
    expect(await post(`${sim.url}/sdapi/v1/interrogate`, { image: png, model: 'CLIP' })).toEqual(
      a1111(404, 'HTTPException', 'Model not found'),
    );
    expect((await post(`${sim.url}/sdapi/v1/interrogate`, { image: null })).status).toBe(422);
  });
});

describe('the read and refresh routes', () => {
  it('answer in v1.9.3’s shapes', async () => {
    const sim = await simulator();
    const get = async (path: string) => (await (await fetch(`${sim.url}${path}`)).json()) as unknown;

    expect(await get('/sdapi/v1/face-restorers')).toEqual([
      { name: 'CodeFormer', cmd_dir: null },
      { name: 'GFPGAN', cmd_dir: null },
    ]);
    expect(await get('/sdapi/v1/realesrgan-models')).toHaveLength(6);
    expect(await get('/sdapi/v1/embeddings')).toEqual({ loaded: {}, skipped: {} });
    for (const empty of ['sd-vae', 'loras', 'hypernetworks', 'prompt-styles'])
      expect(await get(`/sdapi/v1/${empty}`)).toEqual([]);
    expect(await get('/sdapi/v1/scripts')).toMatchObject({
      txt2img: expect.arrayContaining(['Hypertile', 'x/y/z plot']),
    });
    expect(await get('/sdapi/v1/memory')).toMatchObject({
      ram: { total: expect.any(Number) },
      cuda: { events: { oom: 0 } },
    });
    expect(await get('/controlnet/model_list')).toMatchObject({
      model_list: expect.arrayContaining([expect.stringMatching(/canny/)]),
    });
    for (const refresh of ['refresh-vae', 'refresh-embeddings', 'refresh-loras']) {
      expect(await post(`${sim.url}/sdapi/v1/${refresh}`, {})).toEqual({ status: 200, body: null });
    }
  });
});
