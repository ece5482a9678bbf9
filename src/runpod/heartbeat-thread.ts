/**
 * Worker-thread entry of the heartbeat: runs the loop on its own event loop and talks to the main
 * thread by messages ({ jobIds } in, reports out, 'stop' to end).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type HeartbeatOptions, startHeartbeatLoop } from './heartbeat-loop.js';

if (!parentPort) throw new Error('heartbeat-thread must run in a worker thread');
const port = parentPort;
const loop = startHeartbeatLoop(workerData as HeartbeatOptions, (report) => port.postMessage(report));
port.on('message', (message: { jobIds?: string[]; stop?: boolean }) => {
  if (message.jobIds) loop.setJobIds(message.jobIds);
  if (message.stop) {
    loop.stop();
    port.close();
  }
});
