/**
 * Worker-thread entry of the heartbeat: runs the loop on its own event loop; the job ids come through
 * shared memory, reports go out as messages, and a 'stop' message ends it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type HeartbeatOptions, SharedJobIds, startHeartbeatLoop } from './heartbeat-loop.js';

if (!parentPort) throw new Error('heartbeat-thread must run in a worker thread');
const port = parentPort;
const data = workerData as { options: HeartbeatOptions; jobIds: SharedArrayBuffer };
const loop = startHeartbeatLoop(data.options, new SharedJobIds(data.jobIds), (report) => port.postMessage(report));
port.on('message', (message: { stop?: boolean }) => {
  if (message.stop) {
    loop.stop();
    port.close();
  }
});
