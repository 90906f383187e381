import { checkCanWrite } from '../core/fs_checks.js';
import path from 'node:path';

import type { Config } from '../shard/config.js';

/** What a command will write, checked by checkWritePlaces. */
export interface WritePlaces {
  /** The file exporters' directories (not a distributed coordinator's, whose workers write them). */
  exporters: boolean;
  /** A file state store's directory. */
  state: boolean;
}

/** The writable-place checks of a loaded config (option paths as in the native config; a flow's are prefixed by the loader). */
export function checkWritePlaces(config: Pick<Config, 'state' | 'logExporters'>, places: WritePlaces): void {
  if (places.state && config.state.type === 'file') checkCanWrite('state.path', path.dirname(path.resolve(config.state.path)));
  if (!places.exporters) return;
  config.logExporters.forEach((e, i) => {
    const directory = (e as { directory?: unknown }).directory;
    if (e.type === 'file' && typeof directory === 'string') checkCanWrite(`logExporters[${i}].directory`, directory);
  });
}
