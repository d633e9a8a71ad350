import { formatUsd, type Nanos } from './money.js';

/**
 * A session's running totals for its session-end log line: what was billed (responses, estimates,
 * transcriptions, tokens) and what was refused, cancelled or clamped. Counters the filter adds to;
 * nothing is decided from them (the session token limit counts its own settled tokens).
 */
export class SessionTotals {
  responses = 0;
  costNanos: Nanos = 0;
  transcriptionNanos: Nanos = 0;
  inputTokens = 0;
  outputTokens = 0;
  cachedTokens = 0;
  refused = 0;
  estimated = 0;
  cancelled = 0;
  clamped = 0;

  /** The session-end log fields (src/metering/README.md, "Session-end log fields"). */
  summary(model: string, sessionTokens: number): Readonly<Record<string, string | number | boolean | null>> {
    return {
      meteringModel: model || null,
      meteringResponses: this.responses,
      meteringEstimated: this.estimated,
      meteringCostUsd: formatUsd(this.costNanos),
      meteringCostNanos: this.costNanos,
      meteringTranscriptionUsd: formatUsd(this.transcriptionNanos),
      meteringInputTokens: this.inputTokens,
      meteringOutputTokens: this.outputTokens,
      meteringCachedTokens: this.cachedTokens,
      meteringSessionTokens: sessionTokens,
      meteringRefused: this.refused,
      meteringCancelled: this.cancelled,
      meteringClamped: this.clamped,
    };
  }
}
