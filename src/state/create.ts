import path from 'node:path';
import type { Config } from '../config/types.js';
import type { Db } from '../source/session.js';
import { FileStateStore } from './file_store.js';
import { createStateObjects } from './object_backends.js';
import { ObjectStateStore } from './object_store.js';
import { PostgresStateStore } from './postgres_store.js';
import type { StateStore } from './types.js';

export function createStateStore(config: Config, db: Db): StateStore {
  const state = config.state;
  if (state.type === 'file') return new FileStateStore(path.resolve(state.path), config.offsetKey);
  if (state.type === 'postgres') return new PostgresStateStore(db, state.table, config.offsetKey);
  return new ObjectStateStore(state, config.offsetKey, createStateObjects(state));
}
