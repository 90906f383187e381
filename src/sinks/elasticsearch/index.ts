import fsp from 'node:fs/promises';
import path from 'node:path';
import type { SearchExporterConfig } from '../../config/types.js';
import type { ShardSpec } from '../../plan/shards.js';
import { withRetries } from '../../run/retry.js';
import type { RowBatch } from '../../source/row_batch.js';
import { PermanentExportError } from '../failures.js';
import type { Exporter, ExporterShardResult, ShardWriter } from '../types.js';
import { BulkRequestBuilder, parseIndexPattern, type BulkRequest, type IndexPattern } from './request_builder.js';
import { decideBulkResponse, describeError, isRetryableRequestError, type DeadItem } from './retry.js';
import { SearchService } from './service.js';

class RetryItems extends Error {
  constructor(readonly count: number) {
    super(`${count} documents answered 429/5xx`);
  }
}

/**
 * Indexes one shard: rows become _bulk requests of `chunk` docs / `flushBytes`, up to
 * `concurrency` in flight. The shard is confirmed only when every document is indexed (or was
 * already, 409 on create) or dead-lettered; until then the offset cannot pass it.
 */
class BulkShardWriter implements ShardWriter {
  private readonly builder: BulkRequestBuilder;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  private rows = 0;
  private bytes = 0;
  private readonly dead: { request: BulkRequest; item: DeadItem }[] = [];

  constructor(
    private readonly config: SearchExporterConfig,
    private readonly service: SearchService,
    private readonly index: IndexPattern,
    private readonly shard: ShardSpec,
  ) {
    this.builder = new BulkRequestBuilder(config.opType, config.chunk, config.flushBytes);
  }

  async write(batch: RowBatch): Promise<void> {
    for (let i = 0; i < batch.count; i++) {
      this.builder.add(batch, i, this.index.render(batch.tsMicros[i]!));
      if (this.builder.full) await this.dispatch(this.builder.take());
    }
    this.rows += batch.count;
  }

  async finish(): Promise<ExporterShardResult> {
    if (this.builder.count > 0) await this.dispatch(this.builder.take());
    await Promise.allSettled(this.inflight);
    if (this.failure) throw this.failure;
    await this.writeDeadLetters();
    return { exporterId: this.config.id, rows: this.rows - this.dead.length, bytes: this.bytes, parts: [], removed: [], deadLettered: this.dead.length };
  }

  async abort(): Promise<void> {
    this.failure ??= new Error('aborted');
    await Promise.allSettled(this.inflight);
  }

  private async dispatch(request: BulkRequest): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.inflight.size >= this.config.concurrency) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    const p: Promise<void> = this.send(request)
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async send(request: BulkRequest): Promise<void> {
    let pending = request;
    await withRetries(
      { attempts: this.config.maxAttempts, firstDelayMs: 100, maxDelayMs: 20_000 },
      (err) => err instanceof RetryItems || (!(err instanceof PermanentExportError) && isRetryableRequestError(err)),
      async () => {
        let body: unknown;
        try {
          this.bytes += pending.body.length;
          body = await this.service.bulk(pending.body);
        } catch (err) {
          if (isRetryableRequestError(err)) throw err;
          throw this.service.explain(err, '_bulk failed');
        }
        const decision = decideBulkResponse(body as never, pending.count, this.config.opType);
        if (decision.kind === 'ok') return;
        if (decision.kind === 'dont-retry') throw new PermanentExportError(`${this.service.label}: ${decision.reason}`);
        for (const item of decision.dead) this.dead.push({ request: pending, item });
        if (decision.retry.length === 0) return;
        pending = pending.subset(decision.retry);
        throw new RetryItems(decision.retry.length);
      },
    ).catch((err) => {
      if (err instanceof RetryItems) throw new Error(`${this.service.label}: ${err.count} documents still throttled or failing after ${this.config.maxAttempts} attempts`);
      if (isRetryableRequestError(err)) throw this.service.explain(err, `_bulk failed after ${this.config.maxAttempts} attempts`);
      throw err;
    });
  }

  /** One file per shard, replaced atomically, so a shard's rerun never duplicates dead letters. */
  private async writeDeadLetters(): Promise<void> {
    const file = path.join(this.config.deadLetter, `${this.config.id}-${this.shard.id}.ndjson`);
    if (this.dead.length === 0) {
      await fsp.rm(file, { force: true });
      return;
    }
    await fsp.mkdir(this.config.deadLetter, { recursive: true });
    const lines = this.dead.map(({ request, item }) => {
      const action = JSON.parse(request.action(item.item).toString('utf8')) as Record<string, { _index: string; _id: string }>;
      const meta = Object.values(action)[0]!;
      return `{"_index":${JSON.stringify(meta._index)},"_id":${JSON.stringify(meta._id)},"status":${item.status},"reason":${JSON.stringify(describeError(item.error))},"error":${JSON.stringify(item.error)},"document":${request.doc(item.item).toString('utf8')}}\n`;
    });
    const temp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(temp, lines.join(''));
    await fsp.rename(temp, file);
  }
}

export async function createSearchExporter(config: SearchExporterConfig): Promise<Exporter> {
  const service = await SearchService.create(config);
  const index = parseIndexPattern('indexName', config.indexName);
  return {
    id: config.id,
    check: () => service.check(),
    openShard: (shard) => new BulkShardWriter(config, service, index, shard),
    close: () => service.close(),
  };
}
