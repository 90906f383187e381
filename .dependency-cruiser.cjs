/**
 * The architecture, as rules. src/ is built in floors; a module may import its own floor and the
 * floors below it, never above:
 *
 *   cli, demo   the command line and the embedded-PostgreSQL demo
 *   config      assembly: reads files, flows and flags into one Config
 *   run         a run's orchestration: plan, worker pool, checkpoints, late rows, --follow, distributed
 *   shard       one shard's own work in a worker thread: read -> fan-out -> commit
 *   state       where offsets and manifests are kept (file, object store, PostgreSQL)
 *   sinks       destinations, one folder each, on one batched-delivery core
 *   encode      NDJSON, JSON and Parquet encoders, compression
 *   plan        windows and equal-row shards
 *   source      reading PostgreSQL: sessions, COPY, cursors, snapshots, index pins
 *   core        errors, retry and backoff, options and units, time and keysets, logging, redaction
 *
 * Type-only imports follow the same rules: a type is a dependency too.
 */
const FLOORS = ['core', 'source', 'plan', 'encode', 'sinks', 'state', 'shard', 'run', 'config', 'cli|demo'];

const upward = FLOORS.slice(0, -1).map((floor, i) => ({
  name: `${floor.replace('|', '-')}-imports-upward`,
  comment: `src/${floor} may import only ${FLOORS.slice(0, i + 1).join(', ')}`,
  severity: 'error',
  from: { path: `^src/(${floor})/` },
  to: { path: `^src/(${FLOORS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'Modules import each other in one direction only; a cycle means a module is in the wrong place.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'core-is-the-ground-floor',
      comment: 'src/core imports nothing of the project but itself.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { path: '^(src/(?!core/)|test/|bench/)' },
    },
    {
      name: 'src-does-not-import-tests-or-benches',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.d.ts'] },
  },
};
