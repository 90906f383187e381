import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { RunError } from '../core/errors.js';
import type { ObjectStateConfig } from './options.js';
import type { Bound } from '../core/keyset.js';
import type { StateObjects } from './object_backends.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import type { RunManifest, ShardOutcome, StateStore, StoredState, ReadRange, StateJson } from './types.js';

interface StateDocument extends StateJson {
  version: 1;
  offsetKey: string;
}

interface Lease {
  owner: string;
  host: string;
  pid: number;
  /** Epoch ms; 0 = released. */
  expiresAt: number;
}

export interface ObjectStoreClock {
  now(): number;
}

/**
 * State as one JSON object per offsetKey in S3, GCS or Azure Blob (like cloudwatch-logs-s3-exporter's
 * state.json). It is read once at start and written when a run begins (the manifest must exist
 * before any shard writes), at most every flushInterval while shards finish, and when the run
 * ends, stops or exits. Between flushes finished shards are known only in memory: after a crash
 * the rerun redoes them, which is safe because names are deterministic and reruns overwrite.
 *
 * Locking: a lease object written only by conditional writes (create-if-absent, then replace-if-
 * unchanged), renewed every leaseDuration/3 and released at exit; a crashed run's lease is taken
 * over once it expires. Every state write is conditional on the version last seen too, so even a
 * run that lost its lease can never overwrite another's state.
 */
export class ObjectStateStore implements StateStore {
  readonly label: string;
  readonly requests = { get: 0, put: 0 };
  private readonly stateName: string;
  private readonly leaseName: string;
  private readonly owner = randomUUID();
  private leaseVersion: string | null = null;
  private leaseLost: string | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private renewing = false;
  private renewal: Promise<void> = Promise.resolve();
  private doc: StateDocument | null = null;
  /** Version of the state object as last read or written; null = absent. */
  private stateVersion: string | null = null;
  private loaded = false;
  private dirty = false;
  private lastFlush = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private flushError: unknown = null;

  constructor(
    private readonly config: ObjectStateConfig,
    private readonly offsetKey: string,
    private readonly objects: StateObjects,
    private readonly clock: ObjectStoreClock = { now: () => Date.now() },
  ) {
    const base = `${config.prefix}${encodeURIComponent(offsetKey)}`;
    this.stateName = `${base}.state.json`;
    this.leaseName = `${base}.lease.json`;
    this.label = `${objects.where}/${this.stateName}`;
  }

  async open(): Promise<void> {
    const current = await this.get(this.leaseName);
    const lease: Lease = { owner: this.owner, host: hostname(), pid: process.pid, expiresAt: this.clock.now() + this.config.leaseMs };
    if (current) {
      const held = JSON.parse(current.body) as Lease;
      if (held.expiresAt > this.clock.now()) {
        throw new RunError(`offsetKey '${this.offsetKey}': another logship run (host ${held.host}, pid ${held.pid}) holds the lease ${this.objects.where}/${this.leaseName} until ${new Date(held.expiresAt).toISOString()}; it is taken over once it expires`);
      }
    }
    // Create-if-absent, or replace exactly the expired lease we saw: of two runs racing here,
    // the store lets one write succeed and answers the other 412.
    const version = await this.put(this.leaseName, JSON.stringify(lease), current ? current.version : null);
    if (version === null) throw new RunError(`offsetKey '${this.offsetKey}': another logship run took the lease ${this.objects.where}/${this.leaseName} just now`);
    this.leaseVersion = version;
    this.renewTimer = setInterval(() => void this.renew(), Math.max(1000, Math.floor(this.config.leaseMs / 3)));
    this.renewTimer.unref();
  }

  async load(): Promise<StoredState> {
    if (!this.loaded) {
      const got = await this.get(this.stateName);
      this.loaded = true;
      this.stateVersion = got?.version ?? null;
      this.doc = got ? this.parse(got.body) : null;
    }
    const d = this.doc;
    return {
      offset: d?.offset ?? null,
      run: d?.run ?? null,
      done: new Map(Object.entries(d?.done ?? {}).map(([k, v]) => [Number(k), v])),
      acks: new Map(Object.entries(d?.acks ?? {}).map(([k, v]) => [Number(k), v])),
      reads: d?.reads ?? [],
      updatedAt: d?.updatedAt ?? null,
    };
  }

  async beginRun(run: RunManifest): Promise<void> {
    this.change((d) => {
      d.run = run;
      d.done = {};
      delete d.acks;
    });
    // Now, not later: shards must never write before the manifest that names them is stored.
    await this.flush();
  }

  async shardDone(_runId: string, index: number, outcome: ShardOutcome, offset: Bound): Promise<void> {
    this.change((d) => {
      d.done[String(index)] = outcome;
      d.offset = offset;
    });
    await this.flushSoon();
  }

  /**
   * Written with the next flush, not at once (a PUT per request would cost more than the
   * delivery): with object-store state, a crash resends what was acknowledged since the last
   * flush, at most flushInterval's worth of requests.
   */
  async saveAck(_runId: string, index: number, exporterId: string, ack: InShardAck): Promise<void> {
    this.change((d) => {
      d.acks ??= {};
      d.acks[String(index)] = { ...d.acks[String(index)], [exporterId]: ack };
    });
    await this.flushSoon();
  }

  /** Flushes now when the interval has passed since the last flush, else schedules one for then. */
  private async flushSoon(): Promise<void> {
    const due = this.lastFlush + this.config.flushIntervalMs - this.clock.now();
    if (due <= 0) await this.flush();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush().catch((err: unknown) => (this.flushError ??= err));
      }, due);
      this.flushTimer.unref();
    }
  }

  async endRun(_runId: string, offset: Bound, reads: ReadRange[]): Promise<void> {
    this.change((d) => {
      d.offset = offset;
      d.reads = reads;
      d.run = null;
      d.done = {};
      delete d.acks;
    });
    await this.flush();
  }

  async reset(): Promise<void> {
    this.assertLease();
    await this.objects.remove(this.stateName);
    this.doc = null;
    this.stateVersion = null;
  }

  /** Saves what is pending (a stop at the deadline or a signal ends here) and releases the lease. */
  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    await this.renewal; // the release below must name the lease's latest version
    try {
      if (this.dirty) await this.flush();
    } finally {
      if (this.leaseVersion && !this.leaseLost) {
        const released: Lease = { owner: this.owner, host: hostname(), pid: process.pid, expiresAt: 0 };
        await this.put(this.leaseName, JSON.stringify(released), this.leaseVersion).catch(() => null);
      }
      this.leaseVersion = null;
      this.objects.close();
    }
  }

  private change(fn: (d: StateDocument) => void): void {
    if (this.flushError) throw this.flushError;
    this.doc ??= { version: 1, offsetKey: this.offsetKey, offset: null, run: null, done: {}, updatedAt: '' };
    fn(this.doc);
    this.doc.updatedAt = new Date(this.clock.now()).toISOString();
    this.dirty = true;
  }

  /** Writes the document if it changed; serialised, and conditional on the version last seen. */
  private flush(): Promise<void> {
    const next = this.writing.then(async () => {
      if (!this.dirty || !this.doc) return;
      this.assertLease();
      this.dirty = false;
      this.lastFlush = this.clock.now();
      const version = await this.put(this.stateName, JSON.stringify(this.doc), this.stateVersion);
      if (version === null) {
        this.dirty = true;
        throw new RunError(`state ${this.label} was changed by another run (conditional write refused); this run stops without overwriting it`);
      }
      this.stateVersion = version;
    });
    this.writing = next.catch(() => {});
    return next;
  }

  private async renew(): Promise<void> {
    // One renewal at a time: a slow one overlapping the next would race itself into a 412.
    if (!this.leaseVersion || this.leaseLost || this.renewing) return;
    this.renewing = true;
    let finished!: () => void;
    this.renewal = new Promise<void>((r) => (finished = r));
    const lease: Lease = { owner: this.owner, host: hostname(), pid: process.pid, expiresAt: this.clock.now() + this.config.leaseMs };
    try {
      const version = await this.put(this.leaseName, JSON.stringify(lease), this.leaseVersion);
      if (version !== null) this.leaseVersion = version;
      else {
        // Refused: either another run took the lease over, or our own earlier write landed
        // but its answer was lost. The lease's owner says which.
        const seen = await this.get(this.leaseName);
        const holder = seen ? (JSON.parse(seen.body) as Lease) : null;
        if (seen && holder?.owner === this.owner) this.leaseVersion = seen.version;
        else this.leaseLost = `the lease ${this.objects.where}/${this.leaseName} was taken over by another run`;
      }
    } catch {
      // A failed renewal is retried at the next tick; the lease lasts three ticks.
    } finally {
      this.renewing = false;
      finished();
    }
  }

  private assertLease(): void {
    if (this.leaseLost) throw new RunError(`offsetKey '${this.offsetKey}': ${this.leaseLost}; this run stops without writing state`);
  }

  private parse(text: string): StateDocument {
    try {
      const d = JSON.parse(text) as StateDocument;
      if (d.version !== 1 || typeof d.done !== 'object') throw new Error('unknown layout');
      return d;
    } catch (err) {
      throw new RunError(`state ${this.label} is not a logship state object (${(err as Error).message}); move it away or fix it`);
    }
  }

  private async get(name: string) {
    this.requests.get++;
    return this.objects.get(name);
  }

  private async put(name: string, body: string, precondition: string | null) {
    this.requests.put++;
    return this.objects.put(name, body, precondition);
  }
}
