import { inject } from 'vitest';
import pg from 'pg';
import { createKestraSchema } from '../../src/demo/seed.js';

let counter = 0;

/** A fresh database with the Kestra schema; returns its URL and a connected client. */
export async function freshDatabase(label: string, kestra = true): Promise<{ url: string; client: pg.Client }> {
  const base = inject('pgUrl');
  const name = `t_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${++counter}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = base.replace(/\/postgres$/, `/${name}`);
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  if (kestra) await createKestraSchema(client);
  return { url, client };
}

/** The source documents as the exporter must write them (jsonb text), sorted. */
export async function sourceDocs(client: pg.Client, where = 'true'): Promise<string[]> {
  const r = await client.query<{ v: string }>(`SELECT value::text AS v FROM logs WHERE ${where}`);
  return r.rows.map((x) => x.v).sort();
}

export function isoAgo(seconds: number): string {
  return new Date(Date.now() - seconds * 1000).toISOString();
}

/** A session on `url` that survives the server going away (no unhandled 'error'), added to `opened` for the file's afterAll to end. */
export async function connectTo(url: string, opened: pg.Client[]): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  opened.push(c);
  return c;
}
