import { describe, expect, it } from 'vitest';
import { fileNameProblem } from '../../src/models/model-source.js';
import { hostAllowed, isPrivateAddress, privateAllowed, safeUrl } from '../../src/net/url-guard.js';

describe('download URL policy', () => {
  it('knows private, loopback, link-local and reserved addresses, and IPv6 forms of them (mapped, NAT64, 6to4)', () => {
    for (const address of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:10.0.0.1',
      '::ffff:a00:1',
      '::ffff:7f00:1',
      '::127.0.0.1',
      '64:ff9b::a00:1',
      '64:ff9b:1::1',
      '2002:a00:1::1',
      '2002:c0a8:101::',
      '64:ff9b::192.168.1.1',
      '::ffff:0:a00:1',
      '::ffff:0:127.0.0.1',
      '2001:0:4136:e378::1',
      'fec0::1',
      '100::1',
      'ff02::1',
    ]) {
      expect(isPrivateAddress(address), address).toBe(true);
    }
    for (const address of [
      '8.8.8.8',
      '104.18.10.1',
      '2606:4700::1111',
      '::ffff:8.8.8.8',
      '::ffff:808:808',
      // NAT64, 6to4 and IPv4-translated forms of a public IPv4 address are as public as it is.
      '64:ff9b::808:808',
      '64:ff9b::8.8.8.8',
      '2002:808:808::1',
      '::ffff:0:808:808',
    ]) {
      expect(isPrivateAddress(address), address).toBe(false);
    }
  });

  it('lets an address or CIDR exception through, and nothing else', () => {
    expect(privateAllowed('10.2.3.4', ['10.0.0.0/8'])).toBe(true);
    expect(privateAllowed('192.168.1.1', ['10.0.0.0/8', '127.0.0.1'])).toBe(false);
    expect(privateAllowed('127.0.0.1', ['127.0.0.1'])).toBe(true);
    expect(privateAllowed('127.0.0.2', ['127.0.0.1'])).toBe(false);
    expect(privateAllowed('10.0.0.1', [])).toBe(false);
    // An IPv6 form of an allowed IPv4 address is allowed too.
    expect(privateAllowed('64:ff9b::a02:304', ['10.0.0.0/8'])).toBe(true);
    expect(privateAllowed('::ffff:a02:304', ['10.0.0.0/8'])).toBe(true);
  });

  it('matches hosts exactly, and subdomains only through a *. entry', () => {
    const list = ['huggingface.co', '*.huggingface.co'];
    expect(hostAllowed('huggingface.co', list)).toBe(true);
    expect(hostAllowed('cdn-lfs.huggingface.co', list)).toBe(true);
    expect(hostAllowed('evilhuggingface.co', list)).toBe(false);
    expect(hostAllowed('huggingface.co.evil.com', list)).toBe(false);
    expect(hostAllowed('civitai.com', ['*.civitai.com'])).toBe(false);
  });

  it('accepts plain .safetensors/.ckpt names and says what is wrong with others', () => {
    expect(fileNameProblem('dreamshaper_8.safetensors')).toBeNull();
    expect(fileNameProblem('v1-5-pruned-emaonly (fp16).ckpt')).toBeNull();
    expect(fileNameProblem('../x.safetensors')).toBe('it must not contain a path separator');
    expect(fileNameProblem('..x.safetensors')).toBe('it must not contain ".."');
    expect(fileNameProblem('model.bin')).toBe('it must end in .safetensors or .ckpt');
    expect(fileNameProblem('.hidden.safetensors')).toMatch(/plain file name/);
    expect(fileNameProblem('sdxl_vae.safetensors')).toBeNull();
    expect(fileNameProblem('sdxl.vae.safetensors')).toMatch(/A1111 takes for a VAE/);
  });

  it('drops the query and credentials from URLs it shows', () => {
    expect(safeUrl(new URL('https://u:p@huggingface.co/a/b.safetensors?token=x'))).toBe(
      'https://huggingface.co/a/b.safetensors',
    );
  });
});
