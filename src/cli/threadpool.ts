// Imported first by the CLI: libuv sizes its thread pool (shared by every worker thread) when it
// is first used, and its default of 4 serialises the fsyncs of many small parts (sparse
// event-time partitions write one file per hour): 16 halves their commit time.
process.env.UV_THREADPOOL_SIZE ??= '16';
export {};
