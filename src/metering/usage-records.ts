import type { ResponseTokens } from '../protocol/usage.js';
import type { Amount, SettledBy, UsageRecord } from './ledger.js';
import type { Nanos } from './money.js';
import type { PricedTranscription } from './transcriptions.js';

/** Whose a record is and when it is settled: the session's tenant and id, and the wall time. */
export interface RecordOwner {
  readonly ts: number;
  readonly tenant: string;
  readonly session: string;
}

/** A response's record from its response.done's usage (`t`), priced exactly at `costNanos`. */
export function responseRecord(owner: RecordOwner, ref: string, model: string, status: string | null, costNanos: Nanos, t: ResponseTokens, fallbackPrice: boolean): UsageRecord {
  return {
    ts: owner.ts,
    tenant: owner.tenant,
    session: owner.session,
    source: 'response',
    ref,
    model,
    status,
    costNanos,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    cachedTokens: t.cachedTokens,
    totalTokens: t.totalTokens,
    input: t.input,
    cached: t.cached,
    output: t.output,
    seconds: null,
    estimated: false,
    settledBy: 'response.done',
    fallbackPrice,
  };
}

/** A transcription's record, as InputTranscriptions.price priced it: estimated unless settled by its completed event's usage. */
export function transcriptionRecord(owner: RecordOwner, ref: string, priced: PricedTranscription): UsageRecord {
  const { model, cost, settledBy } = priced;
  return {
    ts: owner.ts,
    tenant: owner.tenant,
    session: owner.session,
    source: 'transcription',
    ref,
    model,
    status: null,
    costNanos: cost.nanos,
    inputTokens: cost.inputTokens,
    outputTokens: cost.outputTokens,
    cachedTokens: 0,
    totalTokens: cost.totalTokens,
    input: null,
    cached: null,
    output: null,
    seconds: cost.seconds,
    estimated: cost.estimated || settledBy !== 'transcription.completed',
    settledBy,
    fallbackPrice: priced.fallback,
  };
}

/** A response billed at its reservation (`amount`) by `settledBy`: estimated, with no token details. */
export function estimatedResponseRecord(owner: RecordOwner, ref: string, model: string, amount: Amount, settledBy: SettledBy, fallbackPrice: boolean): UsageRecord {
  return {
    ts: owner.ts,
    tenant: owner.tenant,
    session: owner.session,
    source: 'response',
    ref,
    model,
    status: null,
    costNanos: amount.nanos,
    inputTokens: 0,
    outputTokens: 0,
    cachedTokens: 0,
    totalTokens: amount.tokens,
    input: null,
    cached: null,
    output: null,
    seconds: null,
    estimated: true,
    settledBy,
    fallbackPrice,
  };
}
