/**
 * The V8 flags the API process runs with, wherever it is started: `npm start`, `npm run
 * start:api`, the Dockerfile's CMD, docker-compose.yml and deploy/k8s name them on their command
 * lines (test/unit/api-node-flags.test.ts keeps those in step with this list), and the benches start
 * their API children with them, so they measure the API as deployed.
 *
 * `--max-semi-space-size=64` (MB; Node 20's default is 16): an ingest request holds its thousand
 * parsed events until the group commit that stores them, ~100 ms later, so with small semi-spaces
 * most of them survive a scavenge or two and are copied, then promoted. Share of the API's CPU
 * profile spent in the garbage collector under `npm run bench:ingest`: 10.8 % at 16 MB, 6.9 % at 32,
 * 4.3 % at 64, 5.1 % at 128. The price is memory: the young generation may grow to 3 × 64 MB
 * (peak resident memory in that bench 455–491 MB instead of 371–397).
 */
export const API_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
