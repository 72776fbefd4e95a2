/**
 * The payment-provider simulator as its own process (`npm run start:provider`; `npm start` spawns
 * it), so charges cross a real network boundary. PROVIDER_FAULT_RATES, e.g.
 * `{"decline":0.1,"5xx":0.05}`, makes it fail at random for demos.
 */
import path from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../config';
import { FaultRatesSchema, startProviderSimulator } from '../provider/simulator';
import { createLifecycle } from './lifecycle';
import { entryLogger } from '../logger';

const config = loadConfig();
const logger = entryLogger(config.LOG_LEVEL);
const lifecycle = createLifecycle(logger);

function faultRates(json: string | undefined) {
  if (!json) return {};
  const parsed = FaultRatesSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`Invalid PROVIDER_FAULT_RATES: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

async function main(): Promise<void> {
  const stateFile = path.join(config.DATA_DIR, 'provider-charges.ndjson');
  const rates = faultRates(process.env.PROVIDER_FAULT_RATES);
  const simulator = await startProviderSimulator({ port: config.PROVIDER_PORT, host: config.HOST, stateFile, logger, faultRates: rates });
  lifecycle.defer('payment-provider simulator', simulator.close);
  logger.info({ url: simulator.url, stateFile, faultRates: rates }, 'payment-provider simulator ready');
}

main().catch((err: unknown) => {
  logger.error({ err }, 'payment-provider simulator failed to start');
  void lifecycle.shutdown('start failure', 1);
});
