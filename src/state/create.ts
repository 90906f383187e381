import path from 'node:path';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { FileStateStore } from './file_store.js';
import { PostgresStateStore } from './postgres_store.js';
import type { StateStore } from './types.js';

export function createStateStore(config: Config, client: pg.Client): StateStore {
  return config.state.type === 'file'
    ? new FileStateStore(path.resolve(config.state.path), config.offsetKey)
    : new PostgresStateStore(client, config.state.table, config.offsetKey);
}
