import { randomBytes } from 'node:crypto';
import type { AdmissionRequest, Filter, FilterFactory, SessionContext } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { AUDIO_IN, isTranslationSession, TRANSLATION_AUDIO_IN } from '../protocol/events.js';
import { BY, MeteringFilter } from './filter.js';
import { ledgerFailsOpen, type MeteringRuntime } from './runtime.js';
import { capsRefusal, SlotHandoff } from './session-slots.js';
import { TranslationMeteringFilter } from './translation.js';

export function createMeteringFilterFactory(rt: MeteringRuntime): FilterFactory {
  const slots = new SlotHandoff(rt.ledger);
  const failOpen = ledgerFailsOpen(rt);
  if (rt.config.ledger.failMode === 'open' && !failOpen) {
    rt.log.warn({ ledger: rt.ledger.kind }, 'metering: ledger.failMode "open" applies to the Redis ledger only; the SQLite ledger fails closed (budget_unavailable)');
  }

  async function admit(req: AdmissionRequest): Promise<ProxyError | null> {
    // A client's own ?call_id= socket on a call the proxy governs: the call's sideband session
    // (src/calls) holds its slot and meters it; metering it here too would bill the call twice.
    if (rt.callsGoverned && req.query.has('call_id')) return null;
    const refused = await capsRefusal(rt, req);
    if (refused) return refused;
    const limits = rt.limitsOf(req.tenant);
    const wall = rt.wall();
    // A call's held slot that this admission does not take over (no limit now: a reload) goes back
    // here: its caller hands it over once admitted, and nobody else would give it back.
    if (limits.maxConcurrentSessions === null && req.holdsSlot !== undefined) rt.ledger.releaseSlot(req.tenant.id, req.holdsSlot);
    if (limits.maxConcurrentSessions !== null) {
      // A call's offer holds a slot of its own from its check (holdSessionSlot): its sideband takes that
      // very slot over, by its token (the ledger answers a token it holds as taken), within the limit.
      // Until 2026-12-07 the sideband took a slot of its own beside it, allowed max + 1: with two calls
      // of a tenant in flight the +1 was one call's only, and the other, created upstream already, was
      // hung up (test/metering/redteam-19m-concurrent-calls.test.ts).
      const room = limits.maxConcurrentSessions;
      if (room <= 0) return new ProxyError('concurrent_sessions_exceeded', { details: { limit: limits.maxConcurrentSessions } });
      const token = req.holdsSlot ?? `slot_${randomBytes(8).toString('hex')}`;
      const got = await rt.ledger.acquireSlot(req.tenant.id, token, room, wall);
      if (got === false) {
        return new ProxyError('concurrent_sessions_exceeded', { details: { limit: limits.maxConcurrentSessions } });
      }
      if (got === true) slots.park(req.ticket, req.tenant.id, token);
      else if (!failOpen) return new ProxyError('budget_unavailable', { close: 'tryAgainLater' });
      // Admitted without a slot (failMode open, the ledger down): a call's held one is not kept either.
      else if (req.holdsSlot !== undefined) rt.ledger.releaseSlot(req.tenant.id, req.holdsSlot);
    }
    return null;
  }

  return {
    name: BY,
    wants: {
      // TRANSLATION_AUDIO_IN: a translation session's input audio (no other session sends it: the relay refuses it there).
      client: ['response.create', 'session.update', 'conversation.item.create', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'transcription_session.update', TRANSLATION_AUDIO_IN],
      server: [
        'input_audio_buffer.committed',
        // The answer to the clear sent when the client left (InputTurns.cleared).
        'input_audio_buffer.cleared',
        // Server VAD heard speech: a turn it commits (and transcribes) even if the session ends before its committed is read.
        'input_audio_buffer.speech_started',
        'session.created',
        'session.updated',
        // The Azure preview protocol's (beta) transcription session: its transcription model.
        'transcription_session.updated',
        'response.created',
        'response.done',
        'conversation.item.input_audio_transcription.completed',
        'conversation.item.input_audio_transcription.failed',
        // Items the proxy saw no create for (a call's data channel, mcp_list_tools): estimated when complete.
        'conversation.item.done',
        // Ids of the model's items: a client item create reusing one is a refused duplicate (ItemSizes).
        'response.output_item.added',
        // An MCP server's tool list being made (its server's label), and one that failed (McpTracking).
        'conversation.item.added',
        'mcp_list_tools.failed',
        // Releases the reservation of a response.create the upstream refused.
        'error',
      ],
      // Input audio is dropped while a spent cap holds it back (AudioHold); otherwise the relay's
      // own count of append bytes (ctx.audio) feeds the conversation estimate.
      onRequest: { client: [AUDIO_IN] },
    },
    failMode: 'closed',
    admit,
    // The slot parked for this admission's ticket, if it took one, released now rather than after ADMISSION_HANDOFF_MS.
    withdraw(req) {
      slots.withdraw(req.ticket);
    },
    create(ctx: SessionContext): Filter {
      // A governed call's own socket: its admission took no slot (admit), so its ticket has none parked.
      if (ctx.watchesGovernedCall === true) return {};
      const slot = slots.claim(ctx.admission);
      try {
        // A translation session has no responses or items: its input audio is what it costs.
        if (isTranslationSession(ctx.query)) return new TranslationMeteringFilter(ctx, rt, slot);
        return new MeteringFilter(ctx, rt, slot);
      } catch (err) {
        // No filter holds it, so nobody else would give it back.
        if (slot !== null) rt.ledger.releaseSlot(ctx.tenant.id, slot);
        throw err;
      }
    },
  };
}
