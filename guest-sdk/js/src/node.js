// Synchronous HTTP for units run natively under Node (tests), so an
// adapter written against `http.js` can be tried against a real server.
// A unit's calls are synchronous, Node's `fetch` is not: a worker thread
// runs the `fetch` while this thread sleeps on `Atomics.wait`, then takes
// the answer off the message port synchronously.

import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';

import { Response, TransportError } from './http.js';

const WORKER = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async ({ request, port, signal, timeoutMs }) => {
  let answer;
  try {
    const r = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body.length ? request.body : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = new Uint8Array(await r.arrayBuffer());
    answer = { status: r.status, headers: [...r.headers], body };
  } catch (e) {
    answer = { error: String(e.cause?.code ?? e.cause?.message ?? e.name ?? e) };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
`;

let worker = null;

function theWorker() {
  if (worker === null) {
    worker = new Worker(WORKER, { eval: true });
    // The worker must not keep a test process alive once its tests end.
    worker.unref();
  }
  return worker;
}

/** `http.js` transport over Node's `fetch`, blocking until the answer. */
export function nodeTransport(request, { timeoutMs = 30000 } = {}) {
  const host = /^[a-z]+:\/\/([^/?#]+)/i.exec(request.url)?.[1] ?? request.url;
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  try {
    theWorker().postMessage({ request, port: port2, signal, timeoutMs }, [port2]);
    Atomics.wait(signal, 0, 0, timeoutMs + 5000);
    const answer = receiveMessageOnPort(port1)?.message;
    if (answer === undefined) throw new TransportError(host, 'no answer from the request worker');
    if (answer.error !== undefined) throw new TransportError(host, answer.error);
    return new Response(answer.status, answer.headers, answer.body);
  } finally {
    port1.close();
  }
}
