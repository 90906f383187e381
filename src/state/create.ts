import path from 'node:path';
import type { Config } from '../config/types.js';
import type { Db } from '../source/session.js';
import { FileStateStore } from './file_store.js';
import { PostgresStateStore } from './postgres_store.js';
import type { StateStore } from './types.js';

export function createStateStore(config: Config, db: Db): StateStore {
  return config.state.type === 'file'
    ? new FileStateStore(path.resolve(config.state.path), config.offsetKey)
    : new PostgresStateStore(db, config.state.table, config.offsetKey);
}
