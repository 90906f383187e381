import net from 'node:net';
import type pg from 'pg';

/** CancelRequest's code in the startup packet (protocol 3.0: 1234 << 16 | 5678). */
const CANCEL_REQUEST_CODE = 80877102;
/** A cancel request the server has not closed by then is given up on. */
const CANCEL_CONNECT_MS = 5000;

interface BackendKey {
  processID: number | null;
  secretKey: number | null;
  connectionParameters: { host: string; port: number };
}

/**
 * Asks the server to cancel `client`'s running statement with the protocol's CancelRequest (what
 * libpq's PQcancel and psql's Ctrl-C send): a 16-byte packet on a connection of its own, which
 * the server reads before any authentication or TLS and then closes. Unlike a session running
 * pg_cancel_backend() it takes no connection slot, so it works when the role's or the server's
 * limit is reached, and it keeps a run within its sessions. Resolves once the server has closed
 * the request's connection (it signals the backend first); nothing says whether a statement was
 * running. Rejects when the server cannot be reached.
 */
export function sendCancelRequest(client: pg.Client): Promise<void> {
  const { processID, secretKey, connectionParameters: { host, port } } = client as unknown as BackendKey;
  if (processID === null || secretKey === null) return Promise.reject(new Error('the session has no backend key'));
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);
  return new Promise((resolve, reject) => {
    // A host starting with '/' is the directory of the server's Unix socket, as in libpq.
    const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect(port, host);
    const timer = setTimeout(() => socket.destroy(new Error('the server did not answer the cancel request')), CANCEL_CONNECT_MS);
    socket.once('connect', () => socket.end(packet));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
  });
}
