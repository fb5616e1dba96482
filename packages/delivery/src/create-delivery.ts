/**
 * Picks the adapter for a destination's `type`.
 */
import type { DestinationConfig } from '@reseq/config';
import type { Delivery } from './delivery.js';
import { HttpDelivery } from './http-delivery.js';
import { PostgresDelivery } from './postgres-delivery.js';
import { TcpDelivery } from './tcp-delivery.js';

/** Creates the delivery adapter of a destination. */
export function createDelivery(config: DestinationConfig): Delivery {
  switch (config.type) {
    case 'http':
      return new HttpDelivery(config);
    case 'tcp':
      return new TcpDelivery(config);
    case 'postgres':
      return new PostgresDelivery(config);
  }
}
