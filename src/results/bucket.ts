/**
 * The S3-compatible bucket results go to (AWS S3, Cloudflare R2, Backblaze B2, MinIO): one client per
 * worker, path-style addressing, checksums only where an operation requires them (R2 and B2 refuse the
 * ones the SDK sends by default), the SDK's standard retries. Objects are `{job_id}/{name}.{ext}`;
 * their URLs are presigned GETs, or `<BUCKET_PUBLIC_URL>/<key>` for a bucket served publicly.
 *
 * Credentials come from the worker's environment and appear in no log line, error or result.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { UploadedImage } from '../../machines/job.types.js';
import type { ResultSettings } from '../config/index.js';

export type BucketSettings = NonNullable<ResultSettings['bucket']>;

/** One object to store. */
export interface ObjectToStore {
  key: string;
  body: Buffer;
  contentType: string;
}

/** rp_upload's bucket when none is named: the month and year, `MM-YY`, in UTC. */
export function defaultBucketName(now: Date): string {
  const month = String(now.getUTCMonth() + 1).padStart(2, '0');
  return `${month}-${String(now.getUTCFullYear() % 100).padStart(2, '0')}`;
}

/** A key's path segments percent-encoded, for a public URL. */
function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/**
 * The SDK, loaded when a worker has a bucket (it costs a tenth of a second and 25 MB to load, which a
 * worker without one should not pay at start-up).
 */
async function loadSdk() {
  const [s3, storage, presigner] = await Promise.all([
    import('@aws-sdk/client-s3'),
    import('@aws-sdk/lib-storage'),
    import('@aws-sdk/s3-request-presigner'),
  ]);
  return { ...s3, Upload: storage.Upload, getSignedUrl: presigner.getSignedUrl };
}

type Sdk = Awaited<ReturnType<typeof loadSdk>>;

export class ResultBucket {
  private readonly ready: Promise<{ sdk: Sdk; client: S3Client }>;
  private client: S3Client | undefined;

  constructor(
    private readonly settings: BucketSettings,
    private readonly options: Pick<ResultSettings, 'partBytes' | 'urlExpiresSeconds'>,
  ) {
    // Loading starts now, in the background, so the first upload does not wait for it.
    this.ready = loadSdk().then((sdk) => {
      this.client = this.createClient(sdk);
      return { sdk, client: this.client };
    });
    this.ready.catch(() => undefined);
  }

  private createClient(sdk: Sdk): S3Client {
    const { settings } = this;
    return new sdk.S3Client({
      endpoint: settings.endpointUrl,
      region: settings.region,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
    });
  }

  /** The bucket objects go to now. */
  name(now: Date = new Date()): string {
    return this.settings.name ?? defaultBucketName(now);
  }

  /** Where the bucket is, for messages (no credentials in it). */
  get endpoint(): string {
    return this.settings.endpointUrl;
  }

  /**
   * Stores one object (multipart above UPLOAD_PART_BYTES, its parts removed when it fails) and returns
   * it with its URL. A request once sent is let finish: aborting one on the client's side does not stop
   * a server that already has its body from storing it, so the caller deletes after every request has
   * ended instead (deliver.ts).
   */
  async put(bucket: string, object: ObjectToStore): Promise<UploadedImage> {
    const { sdk, client } = await this.ready;
    const params = { Bucket: bucket, Key: object.key, Body: object.body, ContentType: object.contentType };
    if (object.body.length <= this.options.partBytes) {
      await client.send(new sdk.PutObjectCommand({ ...params, ContentLength: object.body.length }));
    } else {
      await new sdk.Upload({
        client,
        params,
        partSize: this.options.partBytes,
        queueSize: 4,
        leavePartsOnError: false,
      }).done();
    }
    return {
      key: object.key,
      url: await this.urlOf(sdk, client, bucket, object.key),
      bytes: object.body.length,
      sha256: createHash('sha256').update(object.body).digest('hex'),
      content_type: object.contentType,
    };
  }

  /** The keys below `prefix` (at most a thousand: one job's objects). */
  async keysBelow(bucket: string, prefix: string): Promise<string[]> {
    const { sdk, client } = await this.ready;
    const listed = await client.send(new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (listed.Contents ?? []).flatMap((item) => (item.Key ? [item.Key] : []));
  }

  /** Deletes objects, each on its own (DeleteObjects needs a checksum some servers refuse). */
  async remove(bucket: string, keys: readonly string[]): Promise<{ deleted: number; failed: string[] }> {
    const { sdk, client } = await this.ready;
    const results = await Promise.allSettled(
      keys.map((key) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }))),
    );
    const failed = keys.filter((_, index) => results[index]?.status === 'rejected');
    return { deleted: keys.length - failed.length, failed };
  }

  private async urlOf(sdk: Sdk, client: S3Client, bucket: string, key: string): Promise<string> {
    if (this.settings.publicUrl) return `${this.settings.publicUrl}/${keyPath(key)}`;
    return sdk.getSignedUrl(client, new sdk.GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: this.options.urlExpiresSeconds,
    });
  }

  /** Closes the client's connections (a client still loading is closed when it is ready). */
  close(): void {
    if (this.client) this.client.destroy();
    else
      void this.ready.then(
        ({ client }) => client.destroy(),
        () => undefined,
      );
  }
}
