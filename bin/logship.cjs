#!/usr/bin/env node
// The `logship` command. CommonJS, and nothing else before the line below, because libuv sizes
// its thread pool (shared by every worker thread) when it is first used, and an ES module entry
// uses it before its first line runs: Node reads the module graph's files on that pool. Set from
// src/cli (as it was), UV_THREADPOOL_SIZE came too late and the pool stayed at libuv's default 4,
// which queues the fsyncs of many small parts (sparse event-time partitions write one file per
// hour) behind each other and behind the deflates of parallel gzip.
process.env.UV_THREADPOOL_SIZE ??= '16';
import('../dist/src/cli/main.js');
