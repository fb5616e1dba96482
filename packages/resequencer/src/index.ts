/**
 * The resequencing state machine, free of I/O: results arrive in any order, possibly twice;
 * they leave strictly in sequence order, each once. The sender keeps one per destination.
 */
export { ReorderBuffer, type OfferOutcome } from './reorder-buffer.js';
