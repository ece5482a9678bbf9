/** Image inputs of a job: where URLs may point, and how large an image may be. */
import { hostList, integer, networkList, settingGroup } from './declare.js';

export const IMAGE_SETTINGS = settingGroup('Image inputs', {
  urlHosts: hostList('IMAGE_URL_HOSTS', {
    default: '',
    shownDefault: '(any public host)',
    description:
      'Hosts an image URL in a job may name (img2img init images and mask, extras, png-info, interrogate, ControlNet units). Unset: any public host. The worker fetches the image itself and sends A1111 its bytes; every redirect is checked again.',
  }),
  privateAllow: networkList('IMAGE_URL_PRIVATE_ALLOW', {
    description:
      'Private, loopback or link-local networks image URLs may reach after all, e.g. `10.0.0.0/8`. Everything else private (and cloud metadata addresses) is refused, after DNS and on every redirect.',
  }),
  maxBytes: integer('IMAGE_URL_MAX_BYTES', {
    default: 67_108_864,
    min: 1,
    max: 1_073_741_824,
    description: 'Largest image a URL may serve (64 MiB by default).',
  }),
  timeoutMs: integer('IMAGE_URL_TIMEOUT_MS', {
    default: 30_000,
    min: 100,
    max: 600_000,
    description: 'How long fetching one image URL may take, redirects included.',
  }),
  maxPixels: integer('IMAGE_MAX_PIXELS', {
    default: 67_108_864,
    min: 1,
    max: 1_073_741_824,
    description:
      'Largest image, in pixels (width × height, read from its header), a job may give A1111 (8192 × 8192 by default): a small file that claims a huge picture is refused before A1111 decodes it.',
  }),
});
