/**
 * Where the worker may download a checkpoint from.
 *
 * - Only http and https.
 * - The job's URL must be on the host allowlist (MODEL_DOWNLOAD_HOSTS; `*.example.com` matches
 *   subdomains). Redirects may leave the allowlist (Hugging Face and Civitai hand files out from CDN
 *   hosts), but every hop is checked again for the next rule.
 * - Every address a host resolves to must be public: loopback, private, link-local, CGNAT, multicast and
 *   reserved ranges are refused (unless MODEL_DOWNLOAD_PRIVATE_ALLOW lists them), after DNS resolution
 *   and on every redirect, and the connection goes to the address that was checked (no second lookup
 *   that could rebind it).
 * - The file name is a plain name ending in .safetensors or .ckpt.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { WorkerError } from '../errors.js';

const PRIVATE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 96], // unspecified, loopback and the deprecated IPv4-compatible block
  ['64:ff9b::', 96], // NAT64: reaches any IPv4 address, private ones included
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo, which tunnels to IPv4
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4, which embeds an IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some networks)
  ['ff00::', 8], // multicast
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv6');
}

/** The IPv4 address inside an IPv4-mapped IPv6 address, in either spelling (`::ffff:10.0.0.1`, `::ffff:a00:1`). */
function unmapped(address: string): string | null {
  if (isIP(address) !== 6) return null;
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (dotted) return dotted[1]!;
  // The URL parser writes every IPv6 address in one canonical, compressed form.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!hex) return null;
  const high = parseInt(hex[1]!, 16);
  const low = parseInt(hex[2]!, 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/** True for an address no download may reach by default. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  if (family === 6) {
    const mapped = unmapped(address);
    if (mapped) return PRIVATE.check(mapped, 'ipv4');
    return PRIVATE.check(address, 'ipv6');
  }
  return true;
}

/** `*.huggingface.co` matches `cdn-lfs.huggingface.co` (not `huggingface.co` itself); others match exactly. */
export function hostAllowed(host: string, allowlist: readonly string[]): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return allowlist.some((entry) => {
    const pattern = entry.toLowerCase();
    if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1));
    return name === pattern;
  });
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._ ()+-]*\.(safetensors|ckpt)$/;

/** The reason a checkpoint file name is refused, or null when it is a plain .safetensors/.ckpt name. */
export function fileNameProblem(name: string): string | null {
  if (name.includes('/') || name.includes('\\')) return 'it must not contain a path separator';
  if (name.includes('..')) return 'it must not contain ".."';
  if (!/\.(safetensors|ckpt)$/.test(name)) return 'it must end in .safetensors or .ckpt';
  if (!FILE_NAME.test(name) || name.length > 200) {
    return 'it must be a plain file name (letters, digits, space, . _ - + ( ), at most 200 characters)';
  }
  return null;
}

export interface UrlPolicy {
  allowedHosts: readonly string[];
  /** Private networks allowed after all: addresses or CIDR blocks. */
  privateAllow: readonly string[];
}

const allowLists = new WeakMap<readonly string[], BlockList>();

/** True when a private address is on the policy's exception list. */
export function privateAllowed(address: string, allow: readonly string[]): boolean {
  if (allow.length === 0) return false;
  let list = allowLists.get(allow);
  if (!list) {
    list = new BlockList();
    for (const entry of allow) {
      const [network, prefix] = entry.split('/') as [string, string | undefined];
      const type = isIP(network) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) list.addAddress(network, type);
      else list.addSubnet(network, Number(prefix), type);
    }
    allowLists.set(allow, list);
  }
  const plain = unmapped(address) ?? address;
  return list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
}

export interface VettedTarget {
  url: URL;
  /** The checked addresses the connection may go to, in the resolver's order. */
  addresses: { address: string; family: 4 | 6 }[];
}

function refused(message: string, details: Record<string, unknown>): WorkerError {
  return new WorkerError('MODEL_DOWNLOAD_FAILED', message, { details: { reason: 'refused', ...details } });
}

/** A URL for logs and errors: no query string (it may carry a token) and no credentials. */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Checks one hop of a download: scheme, allowlist (for the job's own URL), and the resolved address.
 *
 * @example
 * const target = await vetTarget(new URL(job.model.url), policy, { checkAllowlist: true });
 */
export async function vetTarget(
  url: URL,
  policy: UrlPolicy,
  options: { checkAllowlist: boolean },
): Promise<VettedTarget> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw refused(`model download refused: ${url.protocol} URLs are not allowed, only http and https`, {
      url: safeUrl(url),
    });
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (options.checkAllowlist && !hostAllowed(host, policy.allowedHosts)) {
    throw refused(
      `model download refused: ${host} is not on MODEL_DOWNLOAD_HOSTS (${policy.allowedHosts.join(', ')})`,
      { url: safeUrl(url), host },
    );
  }
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true });
    } catch (error) {
      throw new WorkerError('MODEL_DOWNLOAD_FAILED', `model download failed: cannot resolve ${host}`, {
        details: { reason: 'network', url: safeUrl(url) },
        cause: error,
      });
    }
  }
  const blocked = addresses.filter(
    (a) => isPrivateAddress(a.address) && !privateAllowed(a.address, policy.privateAllow),
  );
  if (blocked.length > 0) {
    throw refused(
      `model download refused: ${host} resolves to ${blocked.map((a) => a.address).join(', ')}, a private, loopback or link-local address not listed in MODEL_DOWNLOAD_PRIVATE_ALLOW`,
      { url: safeUrl(url), host, addresses: blocked.map((a) => a.address) },
    );
  }
  if (addresses.length === 0) throw refused(`model download refused: ${host} has no address`, { url: safeUrl(url) });
  return { url, addresses: addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })) };
}
