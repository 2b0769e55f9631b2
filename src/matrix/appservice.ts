import { AppServiceRegistration, Bridge } from 'matrix-appservice-bridge';
import type { Registration } from '../config/registration.ts';
import { logger } from '../log.ts';

const log = logger('Appservice');

/**
 * The appservice listener: only the homeserver talks to it (transactions and ping).
 * matrix-appservice-bridge checks the hs_token and de-duplicates transactions; each room
 * event goes to `onEvent` (the admin-room console picks its room's messages).
 */
export async function startAppservice(options: {
  homeserverUrl: string;
  domain: string;
  registration: Registration;
  bindAddress: string;
  port: number;
  onEvent: (event: Record<string, unknown>) => void;
}): Promise<Bridge> {
  const bridge = new Bridge({
    homeserverUrl: options.homeserverUrl,
    domain: options.domain,
    registration: AppServiceRegistration.fromObject(
      options.registration as unknown as Parameters<typeof AppServiceRegistration.fromObject>[0],
    ),
    disableStores: true,
    disableContext: true,
    controller: {
      onEvent: (request) => options.onEvent(request.getData() as unknown as Record<string, unknown>),
    },
  });
  await bridge.initialise();
  await bridge.listen(options.port, options.bindAddress);
  // matrix-appservice-bridge does not serve the ping the homeserver sends back (MSC2659).
  bridge.addAppServicePath({
    method: 'POST',
    path: '/_matrix/app/v1/ping',
    handler: (_req, res) => {
      log.debug('ping from the homeserver');
      res.status(200).json({});
    },
  });
  return bridge;
}
