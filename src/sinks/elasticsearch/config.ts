import { ConfigError } from '../../core/errors.js';
import { describe, OptionReader } from '../../core/options.js';
import { readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';
import { parseIndexPattern } from './request_builder.js';

export const ELASTICSEARCH_TYPES = ['elasticsearch', 'io.kestra.plugin.elasticsearch.LogExporter', 'io.kestra.plugin.ee.elasticsearch.LogExporter'];
export const OPENSEARCH_TYPES = ['opensearch', 'io.kestra.plugin.ee.opensearch.LogExporter', 'io.kestra.plugin.opensearch.LogExporter'];

function parse(r: OptionReader, id: string, type: SearchExporterConfig['type']): SearchExporterConfig {
  const indexName = r.string('indexName');
  parseIndexPattern(r.at('indexName'), indexName);
  const conn = r.child('connection');
  if (!conn) throw new ConfigError(r.at('connection'), 'is required (at least connection.hosts)');
  const hostList = conn.list('hosts');
  if (!hostList || hostList.length === 0) throw new ConfigError(conn.at('hosts'), 'must list at least one http(s):// URL');
  const hosts = hostList.map((h, i) => {
    if (typeof h !== 'string' || !/^https?:\/\/[^/]/.test(h)) throw new ConfigError(`${conn.at('hosts')}[${i}]`, `must be an http:// or https:// URL (got ${describe(h)})`);
    return h;
  });
  const basic = conn.child('basicAuth');
  const username = basic?.optionalString('username');
  const password = basic?.optionalString('password');
  if (basic) {
    if (!username) throw new ConfigError(basic.at('username'), 'is required with basicAuth');
    if (!password) throw new ConfigError(basic.at('password'), 'is required with basicAuth');
    basic.done();
  }
  const headers: Record<string, string> = {};
  const rawHeaders = conn.raw('headers');
  if (rawHeaders !== undefined && rawHeaders !== null) {
    const h = OptionReader.of(conn.at('headers'), rawHeaders);
    for (const k of Object.keys(rawHeaders as object)) headers[k] = h.string(k);
    h.done();
  }
  const apiKey = conn.optionalString('apiKey');
  if (apiKey && username) throw new ConfigError(conn.at('apiKey'), 'choose basicAuth or apiKey, not both');
  const config: SearchExporterConfig = {
    type, indexName, hosts, username, password, apiKey, headers,
    trustAllSsl: conn.boolean('trustAllSsl', false),
    caCertificate: conn.optionalString('caCertificate'),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
    flushBytes: r.byteSize('flushBytes', 5 * 1000 * 1000),
    opType: r.choice('opType', ['create', 'index'] as const, 'create'),
  };
  conn.done();
  return config;
}

export const parseElasticsearchExporter = (r: OptionReader, id: string) => parse(r, id, 'elasticsearch');
export const parseOpenSearchExporter = (r: OptionReader, id: string) => parse(r, id, 'opensearch');

export interface SearchExporterConfig extends DeliveryOptions {
  type: 'elasticsearch' | 'opensearch';
  /** Index, alias or data stream; `{yyyy.MM.dd}`-style parts take each row's event time. */
  indexName: string;
  hosts: string[];
  username: string | undefined;
  password: string | undefined;
  apiKey: string | undefined;
  headers: Record<string, string>;
  trustAllSsl: boolean;
  caCertificate: string | undefined;
  /** Bytes per _bulk request; `chunk` (documents) caps it too, whichever comes first. */
  flushBytes: number;
  opType: 'create' | 'index';
}
