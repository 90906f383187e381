// `npm run bench:parquet`: Parquet writers side by side on the same Kestra rows, each in its own
// process: rows/s, output size and peak RSS. Decides the writer (see README, "Parquet").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [role, writerName, codec, rowsArg, out] = process.argv.slice(2);
const levels = ['TRACE', 'DEBUG', 'INFO', 'INFO', 'INFO', 'WARN', 'ERROR'];

function kestraDoc(i: number): Record<string, unknown> {
  return {
    level: levels[i % levels.length], flowId: `flow_${i % 37}`, taskId: `task_${i % 11}`, thread: `WorkerThread-${i % 16}`,
    message: i % 2 ? `Task started: processed ${i} records in ${i % 977} ms` : `Überprüfung abgeschlossen — état: ok ✓ 日本語のログ ${i}`,
    tenantId: 'main', namespace: ['company.team', 'company.team.backend', 'system'][i % 3], taskRunId: `7750ca3559e5b8e1f4${i % 99991}`,
    timestamp: new Date(1.79e12 + i * 37).toISOString(), executionId: `202cb962ac59075b964b${i % 9973}`, attemptNumber: 1 + (i % 3),
    triggerId: i % 7 === 0 ? 'schedule' : undefined, executionKind: i % 4 === 0 ? 'NORMAL' : undefined,
  };
}

async function child(): Promise<void> {
  const rows = Number(rowsArg);
  let t0 = Date.now();
  if (writerName === 'logship' || writerName === 'logship-docs') {
    // logship's path: RowBatches through the Parquet part encoder, streamed to a file. `logship`
    // carries each field as a wire value (as the COPY reader does for a Parquet export);
    // `logship-docs` has only the documents (the cursor reader), so each one is parsed.
    const { RowBatchBuilder } = await import('../src/source/row_batch.js');
    const { parquetFormat } = await import('../src/encode/parquet.js');
    const { KESTRA_PARQUET_FOR_BENCH } = await import('../src/source/table.js');
    const wired = writerName === 'logship';
    const columns = KESTRA_PARQUET_FOR_BENCH.map((c) => (c.from === 'field' && wired ? { ...c, sql: c.field! } : c));
    const fields = columns.filter((c) => c.sql !== undefined).map((c) => c.field!);
    const stream = fs.createWriteStream(out!);
    const format = parquetFormat({ format: 'PARQUET', parquetCompression: codec as never, rowGroupSize: Number(process.env.PQ_ROW_GROUP ?? 20_000), compression: 'none', compressionLevel: 0, maxLinesPerFile: 1e9, maxBytesPerFile: 1e12, logFilePrefix: 'b', keyTemplate: '{shard}{part}' }, { parquet: columns } as never);
    const enc = await format.open((b) => (stream.write(b) ? Promise.resolve() : new Promise((r) => stream.once('drain', () => r()))));
    // Only the encoder is timed (building a batch is the reader's work), and batches are built
    // one at a time as a reader would, so peak RSS is the encoder's.
    let encodeMs = 0;
    for (let start = 0; start < rows; start += 5000) {
      const b = new RowBatchBuilder(5000, 1 << 30, null, fields.length);
      for (let i = start; i < Math.min(rows, start + 5000); i++) {
        const d = kestraDoc(i);
        b.addStrings(`k${i}`, Date.parse(d.timestamp as string) * 1000, JSON.stringify(d));
        for (const f of fields) {
          const v = d[f];
          const bytes = Buffer.from(v === undefined ? '' : String(v));
          b.addWire(bytes, 0, v === undefined ? -1 : bytes.length);
        }
      }
      const batch = b.take();
      const e0 = performance.now();
      await enc.rows(batch, 0, batch.count);
      encodeMs += performance.now() - e0;
    }
    const c0 = performance.now();
    await enc.close();
    await new Promise((r) => stream.end(r));
    encodeMs += performance.now() - c0;
    t0 = Date.now() - encodeMs; // the reported seconds are the encoder's
  } else if (writerName === 'hyparquet-writer') {
    // The writer logship used before its own encoder, fed the way it was: each document parsed,
    // values collected into per-column arrays, one ParquetWriter.write per row group.
    const { ByteWriter, ParquetWriter } = await import('hyparquet-writer');
    const { KESTRA_PARQUET_FOR_BENCH } = await import('../src/source/table.js');
    const { createRequire } = await import('node:module');
    const napi = createRequire(import.meta.url)('zstd-napi') as { compress(b: Uint8Array): Buffer };
    const cols = KESTRA_PARQUET_FOR_BENCH;
    const schema = [{ name: 'root', num_children: cols.length }, ...cols.map((c) => ({
      name: c.name, repetition_type: c.required ? 'REQUIRED' : 'OPTIONAL',
      ...(c.kind === 'timestamp' ? { type: 'INT64', converted_type: 'TIMESTAMP_MICROS' } : c.kind === 'int32' ? { type: 'INT32' } : { type: 'BYTE_ARRAY', converted_type: 'UTF8' }),
    }))];
    const writer = new ByteWriter();
    const fd = fs.openSync(out!, 'w');
    Object.assign(writer, { flush() { fs.writeSync(fd, new Uint8Array(writer.buffer, 0, writer.index)); writer.index = 0; } });
    const pw = new ParquetWriter({ writer, schema: schema as never, codec: codec as never, compressors: { ZSTD: (b: Uint8Array) => napi.compress(b) } });
    const group = Number(process.env.PQ_ROW_GROUP ?? 20_000);
    const texts: string[] = [];
    for (let i = 0; i < rows; i++) texts.push(JSON.stringify(kestraDoc(i)));
    t0 = Date.now();
    for (let start = 0; start < rows; start += group) {
      const data: unknown[][] = cols.map(() => []);
      for (let i = start; i < Math.min(rows, start + group); i++) {
        const d = JSON.parse(texts[i]!) as Record<string, unknown>;
        cols.forEach((c, j) => data[j]!.push(c.from === 'key' ? `k${i}` : c.from === 'ts' ? BigInt(Date.parse(d.timestamp as string)) * 1000n : (d[c.field!] ?? null)));
      }
      pw.write({ columnData: cols.map((c, j) => ({ name: c.name, data: data[j]! })) as never, rowGroupSize: Number.MAX_SAFE_INTEGER });
    }
    pw.finish();
    fs.closeSync(fd);
  } else {
    const parquet = (await import('parquetjs-lite')).default as unknown as {
      ParquetSchema: new (s: object) => unknown; ParquetWriter: { openFile(schema: unknown, file: string, o?: object): Promise<{ appendRow(r: object): Promise<void>; close(): Promise<void>; setRowGroupSize(n: number): void }> };
    };
    const str = { type: 'UTF8', optional: true, compression: codec };
    const schema = new parquet.ParquetSchema({
      timestamp: { type: 'TIMESTAMP_MICROS', compression: codec }, level: str, tenantId: str, namespace: str, flowId: str, taskId: str, executionId: str, taskRunId: str,
      attemptNumber: { type: 'INT32', optional: true, compression: codec }, triggerId: str, thread: str, message: str, executionKind: str, key: { type: 'UTF8', compression: codec },
    });
    const w = await parquet.ParquetWriter.openFile(schema, out!);
    w.setRowGroupSize(50_000);
    for (let i = 0; i < rows; i++) {
      // The same work logship does per row: parse the document text, then map its fields.
      const d = JSON.parse(JSON.stringify(kestraDoc(i))) as Record<string, unknown>;
      await w.appendRow({ ...d, timestamp: new Date(d.timestamp as string), key: `k${i}` });
    }
    await w.close();
  }
  const u = process.resourceUsage();
  process.stdout.write(`${JSON.stringify({ seconds: (Date.now() - t0) / 1000, bytes: fs.statSync(out!).size, peakRssBytes: u.maxRSS * 1024 })}\n`);
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-pqbench-'));
  const lines = ['| writer | codec | rows/s | output | peak RSS |', '|---|---|---:|---:|---:|'];
  try {
    for (const [writer, codec] of [['logship', 'ZSTD'], ['logship', 'SNAPPY'], ['logship', 'GZIP'], ['logship-docs', 'ZSTD'], ['hyparquet-writer', 'ZSTD'], ['parquetjs-lite', 'SNAPPY']] as const) {
      const file = path.join(dir, `${writer}-${codec}.parquet`);
      const c = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', writer, codec, String(rows), file], { stdio: ['ignore', 'pipe', 'inherit'] });
      let o = '';
      c.stdout.on('data', (d) => (o += d));
      await new Promise((r) => c.on('close', r));
      const r = JSON.parse(o) as { seconds: number; bytes: number; peakRssBytes: number };
      lines.push(`| ${writer} | ${codec} | ${Math.round(rows / r.seconds).toLocaleString('en-US')} | ${(r.bytes / 1e6).toFixed(1)} MB | ${Math.round(r.peakRssBytes / 1048576)} MiB |`);
      process.stderr.write(`${lines.at(-1)}\n`);
      fs.rmSync(file, { force: true });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${rows.toLocaleString('en-US')} synthetic Kestra rows, row groups of ${process.env.PQ_ROW_GROUP ?? '20 000'}, ${os.cpus().length} cores, Node ${process.version}\n\n${lines.join('\n')}\n`);
}

(role === 'child' ? child() : main()).then(() => process.exit(0), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
