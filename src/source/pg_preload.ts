// Imported first by each entry point (the CLI, the shard worker): pg must load while the shim is
// in place, and no other module is to see the shim (some take a `navigator` for a browser).
import { navigatorShimmed } from './pg_navigator_shim.js';
import 'pg';

if (navigatorShimmed) delete (globalThis as { navigator?: unknown }).navigator;
