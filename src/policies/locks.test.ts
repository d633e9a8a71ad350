import { ProxyError } from '../protocol/errors.js';
import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { policyFrom, responseCreated, wire } from '../../test/policies/support.js';
import type { AdmissionRequest, Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import type { CompiledPolicy } from './compile.js';
import { applyLocks, LockFilter, locksFactory, mcpUrlAllowed } from './locks.js';
import type { PolicyRegistry } from './registry.js';

const LOCKS = `
locks:
  instructions: { locked: "You are the Acme agent." }
  voice: { allow: [marin, cedar], default: marin }
  outputModalities: { allow: [[audio]], onViolation: reject }
  tools:
    functions: [lookup_order, kb_*]
    mcpServerUrls: ["https://mcp.acme.example/support"]
    requireApproval: always
  toolChoice: { allow: [auto, none, function] }
  imageInput: false
  prompt: { id: pmpt_123, version: "2" }
  tracing: { value: { workflow_name: acme } }
  model: { allow: [gpt-realtime, gpt-realtime-2.1-mini], aliases: { gpt-realtime-mini: gpt-realtime-2.1-mini } }
  inputTranscription: { model: gpt-4o-mini-transcribe }
truncation:
  upstream: { type: retention_ratio, retention_ratio: 0.8, token_limits: { post_instructions: 8000 } }
`;

function setup(policy: CompiledPolicy) {
  const session = new FakeSession();
  const filter = new LockFilter(session, policy);
  return { session, client: (f: Frame) => filter.onClient(f) as Verdict, server: (f: Frame) => filter.onServer(f) as Verdict };
}

function replaced(v: Verdict): Record<string, unknown> {
  if (v.kind !== 'replace') throw new Error(`expected replace, got ${v.kind}`);
  return v.frame.json();
}

const sessionUpdate = (session: Record<string, unknown>, eventId = 'evt_1') => wire({ type: 'session.update', event_id: eventId, session: { type: 'realtime', ...session } });

describe('session locks', () => {
  it('locked instructions cannot be changed: rewritten, with a session_locked notice and a lock report', async () => {
    const { client, session } = setup(await policyFrom(LOCKS));
    const ev = replaced(client(sessionUpdate({ instructions: 'You are a pirate.' })));
    expect((ev.session as Record<string, unknown>).instructions).toBe('You are the Acme agent.');
    const notice = session.client[0] as { type: string; error: { code: string; details: Record<string, unknown>; event_id: string } };
    expect(notice.type).toBe('error');
    expect(notice.error.code).toBe('session_locked');
    expect(notice.error.event_id).toBe('evt_1');
    expect(notice.error.details).toMatchObject({ field: 'instructions', action: 'rewritten' });
    expect(session.reports).toContainEqual({ kind: 'lock', field: 'instructions', action: 'rewritten' });
  });

  it('leaves compliant updates untouched (original bytes forwarded)', async () => {
    const { client, session } = setup(await policyFrom(LOCKS));
    expect(client(sessionUpdate({ audio: { output: { voice: 'cedar' } }, output_modalities: ['audio'] })).kind).toBe('continue');
    expect(session.client).toEqual([]);
  });

  it('rejects what the policy says to reject', async () => {
    const { client, session } = setup(await policyFrom(LOCKS));
    const v = client(sessionUpdate({ output_modalities: ['text'] }, 'evt_7'));
    expect(v.kind).toBe('reject');
    if (v.kind === 'reject') {
      expect(v.error.code).toBe('session_locked');
      expect(v.error.param).toBe('session.output_modalities');
      expect(v.error.eventId).toBe('evt_7');
      expect(v.error.closesSession).toBe(false);
    }
    expect(session.reports).toContainEqual({ kind: 'lock', field: 'output_modalities', action: 'rejected' });
  });

  it('strips disallowed functions and MCP servers and forces require_approval', async () => {
    const { client } = setup(await policyFrom(LOCKS));
    const ev = replaced(
      client(
        sessionUpdate({
          tools: [
            { type: 'function', name: 'lookup_order', parameters: {} },
            { type: 'function', name: 'kb_search', parameters: {} },
            { type: 'function', name: 'wire_money', parameters: {} },
            { type: 'mcp', server_label: 'ok', server_url: 'https://mcp.acme.example/support/v1', require_approval: 'never' },
            { type: 'mcp', server_label: 'evil', server_url: 'https://mcp.acme.example.evil.com/support' },
          ],
        }),
      ),
    );
    const tools = (ev.session as { tools: { name?: string; server_label?: string; require_approval?: string }[] }).tools;
    expect(tools.map((t) => t.name ?? t.server_label)).toEqual(['lookup_order', 'kb_search', 'ok']);
    expect(tools[2]!.require_approval).toBe('always');
  });

  it('rejects an MCP tool on a non-allowed server when configured to reject', async () => {
    const { client } = setup(await policyFrom(`locks:\n  tools: { functions: [], mcpServerUrls: ["https://mcp.ok.example/"], onViolation: reject }`));
    const v = client(sessionUpdate({ tools: [{ type: 'mcp', server_label: 'x', server_url: 'https://other.example/mcp' }] }));
    expect(v.kind).toBe('reject');
  });

  it('applies locks to response.create overrides', async () => {
    const { client } = setup(await policyFrom(LOCKS));
    const ev = replaced(client(wire({ type: 'response.create', response: { instructions: 'be rude', audio: { output: { voice: 'alloy' } }, tool_choice: 'required' } })));
    const r = ev.response as { instructions: string; audio: { output: { voice: string } }; tool_choice: string };
    expect(r.instructions).toBe('You are the Acme agent.');
    expect(r.audio.output.voice).toBe('marin');
    expect(r.tool_choice).toBe('auto');
  });

  it('refuses image input', async () => {
    const { client } = setup(await policyFrom(LOCKS));
    const v = client(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] } }));
    expect(v.kind).toBe('reject');
    if (v.kind === 'reject') expect(v.error.details).toMatchObject({ field: 'image_input' });
  });

  it('pins prompt, tracing and truncation', async () => {
    const { client } = setup(await policyFrom(LOCKS));
    const ev = replaced(client(sessionUpdate({ prompt: { id: 'pmpt_other', variables: { a: 'b' } }, tracing: 'auto', truncation: 'disabled' })));
    const s = ev.session as Record<string, unknown>;
    expect(s.prompt).toEqual({ id: 'pmpt_123', version: '2', variables: { a: 'b' } });
    expect(s.tracing).toEqual({ workflow_name: 'acme' });
    expect(s.truncation).toEqual({ type: 'retention_ratio', retention_ratio: 0.8, token_limits: { post_instructions: 8000 } });
  });

  it('sends the locked state upstream right after session.created', async () => {
    const { server, session } = setup(await policyFrom(LOCKS));
    const created = wire({
      type: 'session.created',
      session: {
        type: 'realtime',
        id: 'sess_1',
        model: 'gpt-realtime',
        instructions: 'Default instructions.',
        output_modalities: ['audio'],
        audio: { input: { transcription: null }, output: { voice: 'alloy' } },
        tools: [],
        tool_choice: 'auto',
        truncation: 'auto',
        prompt: null,
        tracing: null,
      },
    });
    expect(server(created).kind).toBe('continue');
    expect(session.upstream).toHaveLength(1);
    const update = session.upstream[0] as { type: string; session: Record<string, unknown> };
    expect(update.type).toBe('session.update');
    expect(update.session).toEqual({
      type: 'realtime',
      instructions: 'You are the Acme agent.',
      prompt: { id: 'pmpt_123', version: '2' },
      tracing: { workflow_name: 'acme' },
      truncation: { type: 'retention_ratio', retention_ratio: 0.8, token_limits: { post_instructions: 8000 } },
      audio: { output: { voice: 'marin' }, input: { transcription: { model: 'gpt-4o-mini-transcribe' } } },
    });
  });

  it('prefix/suffix instructions keep client text but add what is required', async () => {
    const { client } = setup(await policyFrom(`locks:\n  instructions: { prefix: "RULES. ", suffix: " END" }`));
    const ev = replaced(client(sessionUpdate({ instructions: 'Be helpful.' })));
    expect((ev.session as { instructions: string }).instructions).toBe('RULES. Be helpful. END');
    expect(client(sessionUpdate({ instructions: 'RULES. ok END' })).kind).toBe('continue');
  });

  it('cancels a response that calls a function outside the allowlist and deletes the call', async () => {
    const { server, session } = setup(await policyFrom(LOCKS));
    server(responseCreated('resp_1'));
    const added = wire({ type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: { id: 'item_fc', type: 'function_call', name: 'wire_money', call_id: 'call_1', arguments: '' } });
    expect(server(added).kind).toBe('drop');
    expect(session.cancelled[0]).toMatchObject({ responseId: 'resp_1' });
    expect(session.cancelled[0]!.notice.details).toMatchObject({ field: 'tools', function: 'wire_money' });
    expect(server(wire({ type: 'response.function_call_arguments.done', response_id: 'resp_1', item_id: 'item_fc', call_id: 'call_1', name: 'wire_money', arguments: '{}' })).kind).toBe('drop');
    server(wire({ type: 'response.done', response: { id: 'resp_1', status: 'cancelled', output: [] } }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'item_fc' }]);
    const ok = wire({ type: 'response.output_item.added', response_id: 'resp_2', output_index: 0, item: { id: 'item_2', type: 'function_call', name: 'kb_lookup', call_id: 'c', arguments: '' } });
    expect(server(ok).kind).toBe('continue');
  });

  it('admission refuses models outside the allowlist and rewrites aliases to their successor', async () => {
    const policy = await policyFrom(LOCKS);
    const registry = { resolve: () => ({ current: policy, name: 'test' }) } as unknown as PolicyRegistry;
    const factory = locksFactory(registry);
    const req = (model: string): AdmissionRequest => ({ tenant: new FakeSession().tenant, model, query: new Map() });
    expect(await factory.admit!(req('gpt-realtime'))).toBeNull();
    expect(await factory.admit!(req(''))).toBeNull();
    const refused = await factory.admit!(req('gpt-4o-realtime-preview'));
    expect(refused).toBeInstanceOf(ProxyError);
    expect(refused instanceof ProxyError && refused.code).toBe('model_not_allowed');
    expect(refused instanceof ProxyError && refused.httpStatus).toBe(403);
    expect(await factory.admit!(req('gpt-realtime-mini'))).toEqual({ model: 'gpt-realtime-2.1-mini' });
  });

  it('a policy without locks touches nothing', async () => {
    const { client, server, session } = setup(await policyFrom('description: none'));
    expect(client(sessionUpdate({ instructions: 'anything', tools: [{ type: 'function', name: 'x' }] })).kind).toBe('continue');
    expect(server(wire({ type: 'session.created', session: { type: 'realtime', instructions: '' } })).kind).toBe('continue');
    expect(session.upstream).toEqual([]);
  });
});

describe('lock helpers', () => {
  it('matches MCP URLs by origin and path prefix', () => {
    const allowed = ['https://mcp.acme.example/support'];
    expect(mcpUrlAllowed('https://mcp.acme.example/support', allowed)).toBe(true);
    expect(mcpUrlAllowed('https://mcp.acme.example/support/x', allowed)).toBe(true);
    expect(mcpUrlAllowed('https://mcp.acme.example/supportx', allowed)).toBe(false);
    expect(mcpUrlAllowed('http://mcp.acme.example/support', allowed)).toBe(false);
    expect(mcpUrlAllowed('https://mcp.acme.example.evil.com/support', allowed)).toBe(false);
    expect(mcpUrlAllowed('not a url', allowed)).toBe(false);
  });

  it('only checks the fields present in a partial update', async () => {
    const p = await policyFrom(LOCKS);
    expect(applyLocks({ type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } }, 'session', p.locks, p.truncation.upstream)).toEqual([]);
  });
});
