import { spawnSync } from 'node:child_process';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import winston from 'winston';
import { sanitizeForLog, TurnBatchedOutput } from '../src/log/index.js';
import { captureLog } from './support/logs.js';

const image = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37) % 256)).toString('base64');

describe('log lines', () => {
  it('take RunPod’s {"requestId","message","level"} shape, fields folded into the message', () => {
    const { log, lines } = captureLog({ format: 'runpod' });
    log.child({ jobId: 'abc-u1' }).info('transition', { from: 'booting', to: 'waitingForApi', elapsedMs: 3 });
    log.warn('no job id here');

    expect(lines).toEqual([
      '{"requestId":"abc-u1","message":"transition | from=booting to=waitingForApi elapsedMs=3","level":"INFO"}',
      '{"requestId":null,"message":"no job id here","level":"WARN"}',
    ]);
  });

  it('are JSON with job id and fields in the json shape', () => {
    const { log, records } = captureLog({ format: 'json' });
    log.child({ jobId: 'j1' }).info('transition', { from: 'a', to: 'b' });

    expect(records()[0]).toMatchObject({ level: 'info', message: 'transition', jobId: 'j1', from: 'a', to: 'b' });
    expect(typeof records()[0]?.['timestamp']).toBe('string');
  });

  it('never carry a base64 image or a secret, whatever the shape', () => {
    for (const format of ['json', 'runpod', 'text'] as const) {
      const { log, lines } = captureLog({ format });
      log.info('result', {
        images: [image, `data:image/png;base64,${image}`],
        headers: { Authorization: 'Basic dXNlcjpwYXNz' },
        hf_token: 'hf_abcdef',
      });
      const text = lines.join('\n');
      expect(text).not.toContain(image.slice(0, 200));
      expect(text).toContain(`<base64 ${image.length} chars>`);
      expect(text).not.toContain('dXNlcjpwYXNz');
      expect(text).not.toContain('hf_abcdef');
    }
  });

  it('never carry the signature or access key of a presigned URL, in a field or in the message', () => {
    const url =
      'http://127.0.0.1:9000/results/job/image-0.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20261207%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261207T120000Z&X-Amz-Expires=604800&X-Amz-Signature=60a4f1c2d3e4&X-Amz-SignedHeaders=host';
    for (const format of ['json', 'runpod', 'text'] as const) {
      const { log, lines } = captureLog({ format });
      log.info(`Job result: ${JSON.stringify({ output: { images: [url] } })}`, { images: [url] });
      const text = lines.join('\n');
      expect(text).not.toContain('AKIAEXAMPLEKEY');
      expect(text).not.toContain('60a4f1c2d3e4');
      expect(text).toContain('X-Amz-Signature=***');
      expect(text).toContain('X-Amz-Expires=604800');
    }
  });

  it('cut the middle out of a very long message, as RunPod does', () => {
    const { log, records } = captureLog({ format: 'runpod' });
    log.info('word '.repeat(1000));
    const message = String(records()[0]?.['message']);
    expect(message).toContain('...TRUNCATED 904 CHARACTERS...');
    expect(message.length).toBeLessThan(4200);
  });

  it('leave ordinary text alone', () => {
    expect(sanitizeForLog({ prompt: 'a lighthouse at dawn', steps: 20 })).toEqual({
      prompt: 'a lighthouse at dawn',
      steps: 20,
    });
  });
});

describe('standard output for log lines', () => {
  it('writes the lines of one turn of the event loop together once the turn is done, in order', async () => {
    const writes: string[] = [];
    const output = new TurnBatchedOutput({ write: (text: string) => writes.push(text) });
    const bare = winston.format.printf((info) => String(info.message));
    const line = (message: string) => ({ level: 'info', message });

    output.defer(line('one'), bare);
    output.defer(line('two'), bare);
    expect(writes).toEqual([]); // nothing stands between a job's steps
    await nextTurn();
    output.defer(line('three'), bare);
    output.writeNow(line('four'), bare);
    expect(writes).toEqual(['one\ntwo\n', 'three\nfour\n']); // at once, after what was pending
    await nextTurn();

    expect(writes).toHaveLength(2);
  });

  it('loses no line when the process ends in the same turn, however it ends', () => {
    const log = fileURLToPath(new URL('../dist/src/log/index.js', import.meta.url));
    const endings = {
      'process.exit(3)': 3,
      "throw new Error('boom')": 1,
      "Promise.reject(new Error('boom'))": 1,
      '': 0,
    };
    for (const [ending, status] of Object.entries(endings)) {
      const script = `import { createLogger } from ${JSON.stringify(log)};
        createLogger({ level: 'info', format: 'json' }).info('the last line');
        ${ending}`;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(result.status, ending).toBe(status);
      expect(result.stdout, ending).toContain('"message":"the last line"');
    }
  });

  it('formats a line with its turn’s batch, stamped with the time it was logged, and never one of a level not logged', () => {
    const log = fileURLToPath(new URL('../dist/src/log/index.js', import.meta.url));
    // The proxy reports every time a formatter lists its keys.
    const script = `import { createLogger } from ${JSON.stringify(log)};
      const log = createLogger({ level: 'info', format: 'json' });
      const watched = new Proxy({}, { ownKeys(target) { process.stderr.write('formatted;'); return Reflect.ownKeys(target); } });
      log.debug('not logged', { watched });
      const before = Date.now();
      log.info('logged', { watched });
      const after = Date.now();
      process.stderr.write('called;');
      while (Date.now() < after + 50) {}
      process.stderr.write(JSON.stringify({ before, after }));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });

    // Formatted once, after the turn's code had run; the debug line never.
    const order = /^called;(\{.*\})formatted;$/.exec(result.stderr);
    expect(order, result.stderr).not.toBeNull();
    const { before, after } = JSON.parse(order![1]!) as { before: number; after: number };
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line['message'])).toEqual(['logged']);
    const at = Date.parse(String(lines[0]!['timestamp']));
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(after);
  });

  it('writes an error line for a line it cannot format, and goes on', () => {
    const log = fileURLToPath(new URL('../dist/src/log/index.js', import.meta.url));
    const script = `import { createLogger } from ${JSON.stringify(log)};
      const log = createLogger({ level: 'info', format: 'json' });
      const loop = {};
      let deep = loop;
      for (let i = 0; i < 10; i++) deep = deep.next = {};
      deep.next = loop;
      log.info('a loop', { loop });
      log.info('the next line');`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });

    expect(result.status).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'error', lostMessage: 'a loop' });
    expect(String(lines[0]!['message'])).toMatch(/^a log line could not be written: .*circular/i);
    expect(lines[1]).toMatchObject({ level: 'info', message: 'the next line' });
  });

  it('writes a warning or an error at once, with the lines before it, so a SIGKILL loses neither', () => {
    const log = fileURLToPath(new URL('../dist/src/log/index.js', import.meta.url));
    for (const level of ['warn', 'error']) {
      const script = `import { createLogger } from ${JSON.stringify(log)};
        const log = createLogger({ level: 'info', format: 'json' });
        log.info('before it');
        log.${level}('the last words');
        process.kill(process.pid, 'SIGKILL');`;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(result.signal, level).toBe('SIGKILL');
      const messages = result.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { message: string }).message);
      expect(messages, level).toEqual(['before it', 'the last words']);
    }
  });
});
