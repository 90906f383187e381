import path from 'node:path';
import type { StateConfig } from './options.js';
import type { Db } from '../source/session.js';
import { FileStateStore } from './file_store.js';
import { ObjectStateStore } from './object_store.js';
import { PostgresStateStore } from './postgres_store.js';
import type { StateStore } from './types.js';

/**
 * Object-store state loads its SDK only when configured: the S3, GCS and Azure clients cost
 * about half a second of start-up that a file or postgres state must not pay.
 */
export async function createStateStore(config: { state: StateConfig; offsetKey: string }, db: Db): Promise<StateStore> {
  const state = config.state;
  if (state.type === 'file') return new FileStateStore(path.resolve(state.path), config.offsetKey);
  if (state.type === 'postgres') return new PostgresStateStore(db, state.table, config.offsetKey);
  const { createStateObjects } = await import('./object_backends.js');
  return new ObjectStateStore(state, config.offsetKey, await createStateObjects(state));
}
