/**
 * node-postgres 8 decides at load whether it runs in Cloudflare Workers. Where `navigator` is not
 * defined, as in Node 20, it answers by constructing a `Response`, which loads Node's fetch
 * implementation (undici): ~35 ms of every thread's start, the main thread's and each worker's.
 * A `navigator` that says Node.js answers the question without it. pg_preload.ts removes it
 * again once pg has loaded; Node ≥ 21 defines its own and is left alone.
 */
const globals = globalThis as { navigator?: unknown };
export const navigatorShimmed = globals.navigator === undefined;
if (navigatorShimmed) globals.navigator = { userAgent: 'Node.js' };
