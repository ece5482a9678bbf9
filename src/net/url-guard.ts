/**
 * Where the worker may fetch from on a job's behalf (checkpoints, image inputs): the same guard for
 * every fetch.
 *
 * - Only http and https.
 * - The job's own URL must be on the host allowlist when there is one (`*.example.com` matches
 *   subdomains). Redirects may leave the allowlist (Hugging Face and Civitai hand files out from CDN
 *   hosts), but every hop is checked again for the next rule.
 * - Every address a host resolves to must be public: loopback, private, link-local, CGNAT, multicast and
 *   reserved ranges are refused (unless the policy's exception list names them; an IPv6 address that
 *   carries an IPv4 one, such as NAT64 or 6to4, is judged by the IPv4 address), after DNS resolution
 *   and on every redirect, and the connection goes to the address that was checked (no second lookup
 *   that could rebind it).
 *
 * A refusal is a {@link UrlRefusal}; each kind of fetch turns it into its own error.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

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
  // IPv4-mapped, IPv4-translated, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged by the
  // IPv4 address inside them (embeddedIPv4), so a public host behind NAT64 stays reachable.
  ['64:ff9b:1::', 48], // local-use NAT64: its mapping is the network's own
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo, which tunnels to IPv4
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some networks)
  ['ff00::', 8], // multicast
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv6');
}

/** The eight 16-bit groups of an IPv6 address. */
function hextets(address: string): number[] {
  // The URL parser writes every IPv6 address in one canonical form: lower case, hex only, `::` at most once.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::') as [string, string | undefined];
  const part = (text: string) => (text === '' ? [] : text.split(':').map((group) => parseInt(group, 16)));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

const zero = (groups: number[]) => groups.every((group) => group === 0);
const dotted = (high: number, low: number) => [high >> 8, high & 255, low >> 8, low & 255].join('.');

/**
 * The IPv4 address an IPv6 address stands for, when it is one of the forms that reach IPv4:
 * IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and
 * 6to4 (`2002:aabb:ccdd::`). Such an address is as private as the IPv4 address inside it.
 */
function embeddedIPv4(address: string): string | null {
  if (isIP(address) !== 6) return null;
  const g = hextets(address);
  if (zero(g.slice(0, 5)) && g[5] === 0xffff) return dotted(g[6]!, g[7]!);
  if (zero(g.slice(0, 4)) && g[4] === 0xffff && g[5] === 0) return dotted(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(g.slice(2, 6))) return dotted(g[6]!, g[7]!);
  if (g[0] === 0x2002) return dotted(g[1]!, g[2]!);
  return null;
}

/** True for an address no download may reach by default. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  if (family === 6) {
    const inner = embeddedIPv4(address);
    if (inner) return PRIVATE.check(inner, 'ipv4');
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

export interface UrlPolicy {
  /** Hosts the job's own URL may name (checked when the caller asks). */
  allowedHosts: readonly string[];
  /** Private networks allowed after all: addresses or CIDR blocks. */
  privateAllow: readonly string[];
  /** The settings behind the two lists, named in refusals. */
  settingNames: { hosts: string; privateAllow: string };
}

/**
 * Why a URL is not fetched: `refused` by the policy, or `network` (its host cannot be resolved).
 * The message says what and where, without the URL's query or credentials.
 */
export class UrlRefusal extends Error {
  override readonly name = 'UrlRefusal';
  constructor(
    readonly reason: 'refused' | 'network',
    message: string,
    readonly details: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
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
  const plain = embeddedIPv4(address) ?? address;
  return list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
}

export interface VettedTarget {
  url: URL;
  /** The checked addresses the connection may go to, in the resolver's order. */
  addresses: { address: string; family: 4 | 6 }[];
}

function refused(message: string, details: Record<string, unknown>): UrlRefusal {
  return new UrlRefusal('refused', message, details);
}

/** A URL for logs and errors: no query string (it may carry a token) and no credentials. */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Checks one hop of a fetch: scheme, allowlist (for the job's own URL), and the resolved address.
 * Rejects with a {@link UrlRefusal}.
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
    throw refused(`${url.protocol} URLs are not allowed, only http and https`, {
      url: safeUrl(url),
    });
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (options.checkAllowlist && !hostAllowed(host, policy.allowedHosts)) {
    throw refused(`${host} is not on ${policy.settingNames.hosts} (${policy.allowedHosts.join(', ')})`, {
      url: safeUrl(url),
      host,
    });
  }
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true });
    } catch (error) {
      throw new UrlRefusal('network', `cannot resolve ${host}`, { url: safeUrl(url) }, { cause: error });
    }
  }
  const blocked = addresses.filter(
    (a) => isPrivateAddress(a.address) && !privateAllowed(a.address, policy.privateAllow),
  );
  if (blocked.length > 0) {
    throw refused(
      `${host} resolves to ${blocked.map((a) => a.address).join(', ')}, a private, loopback or link-local address not listed in ${policy.settingNames.privateAllow}`,
      { url: safeUrl(url), host, addresses: blocked.map((a) => a.address) },
    );
  }
  if (addresses.length === 0) throw refused(`${host} has no address`, { url: safeUrl(url) });
  return { url, addresses: addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })) };
}
